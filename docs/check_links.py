"""Check every link between the pages of the built site: the file exists, and so does its #fragment.

    python docs/check_links.py docs/_build/html

Sphinx's -W already fails on a broken cross-reference or toctree entry, and MyST on a link to a
missing page or heading; this checks what reaches the HTML by other ways too (raw HTML, the
notebooks' Markdown, the theme's own links). Links to other sites are not fetched: CI has no
network. Exits 1, listing each broken link with the page it is on.
"""
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit


class Page(HTMLParser):
    """The ids a page defines and the local links it holds."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids, self.links = set(), []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("id", "name"):
            if attrs.get(key) and (key == "id" or tag == "a"):
                self.ids.add(attrs[key])
        for key in ("href", "src"):
            if attrs.get(key) is not None and not (tag == "link" and attrs.get("rel") in ("preconnect", "dns-prefetch")):
                self.links.append(attrs[key])


def local(link):
    """The path and fragment of a link within the site, or None for another site, mail, data, JS."""
    parts = urlsplit(link)
    if parts.scheme or parts.netloc or link.startswith(("mailto:", "javascript:", "data:")):
        return None
    return unquote(parts.path), unquote(parts.fragment)


def broken_links(site):
    site = Path(site).resolve()
    pages = {}
    for path in site.rglob("*.html"):
        if path.relative_to(site).parts[0] in ("_static", "_sources"):
            continue  # the theme's templates and the page sources, not pages
        page = Page()
        page.feed(path.read_text(encoding="utf-8", errors="replace"))
        pages[path] = page
    broken = []
    for path, page in sorted(pages.items()):
        for link in page.links:
            found = local(link)
            if found is None:
                continue
            target_path, fragment = found
            target = (path.parent / target_path).resolve() if target_path else path
            if target.is_dir():
                target = target / "index.html"
            where = path.relative_to(site)
            if not target.exists():
                broken.append(f"{where}: {link}: no such file")
            elif not target.is_relative_to(site):
                broken.append(f"{where}: {link}: outside the site")
            elif fragment and target in pages and fragment not in pages[target].ids:
                broken.append(f"{where}: {link}: no #{fragment} in {target.relative_to(site)}")
    return broken, len(pages)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    site = argv[0] if argv else "docs/_build/html"
    broken, count = broken_links(site)
    for line in broken:
        print(line, file=sys.stderr)
    if broken:
        print(f"{len(broken)} broken links between the pages of {site}", file=sys.stderr)
        return 1
    print(f"links between the {count} pages of {site}: all resolve")
    return 0


if __name__ == "__main__":
    sys.exit(main())
