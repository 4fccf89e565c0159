"""The catalogue of losses (`sandbox.losses.catalogue`): every loss of the registry, described from
where it is written, as the docs' loss reference and the loss tables read it."""
import inspect

import pytest

import sandbox
from sandbox.losses import CLAIMS, LossEntry, canonical_loss, catalogue
from sandbox.losses.fused import kernel

ENTRIES = {entry.name: entry for entry in catalogue()}


def test_the_catalogue_has_every_loss_of_the_registry_in_its_order():
    assert [entry.name for entry in catalogue()] == list(sandbox.LOSSES)
    assert all(isinstance(entry, LossEntry) and entry.function is sandbox.LOSSES[entry.name]
               for entry in catalogue())


@pytest.mark.parametrize("name", sandbox.LOSSES)
def test_every_docstring_opens_with_the_formula_and_the_paper_in_parentheses(name):
    # CONTRIBUTING.md's convention, which the docs' loss reference is read from
    entry = ENTRIES[name]
    assert entry.summary == inspect.getdoc(sandbox.LOSSES[name]).splitlines()[0]
    assert entry.formula and entry.paper, (
        f"the docstring of {name!r} must open with one line giving the loss, its formula and, in parentheses "
        f"at the end, its paper: 'DIoU loss, 1 - IoU + rho^2 / c^2 (Zheng et al., AAAI 2020, arXiv "
        f"1911.08287).'; it opens {entry.summary!r}")
    assert entry.summary.startswith(entry.formula) and f"({entry.paper})" in entry.summary


def test_the_formula_and_the_paper_are_read_off_the_first_line():
    diou, giou = ENTRIES["diou"], ENTRIES["giou"]
    assert diou.formula == "DIoU loss, 1 - IoU + rho^2 / c^2"
    assert diou.paper == "Zheng et al., AAAI 2020, arXiv 1911.08287" and diou.arxiv == "1911.08287"
    # a bracket inside the formula does not end it: the paper is the last group in parentheses
    assert giou.formula == "GIoU loss, 1 - IoU + (C - U) / C, in [0, 2)"
    assert giou.paper == "Rezatofighi et al., CVPR 2019, arXiv 1902.09630"
    assert ENTRIES["inner_giou"].paper == "Zhang, Xu and Zhang, arXiv 2311.02877"


def test_parameters_are_the_signatures_with_their_defaults_and_every_spec_takes_them():
    assert ENTRIES["iou"].parameters == {}
    assert ENTRIES["mpdiou"].parameters == {"frame_width": 10.0, "frame_height": 10.0}
    assert ENTRIES["focaler_ciou"].parameters == {"trade_off_gradient": False, "d": 0.0, "u": 0.95}
    for entry in catalogue():
        if entry.parameters:
            spec = f"{entry.name}:" + ",".join(f"{key}={value}" for key, value in entry.parameters.items())
            assert canonical_loss(spec) == spec, spec  # each as a spec names it, at the same value


def test_fused_says_whether_the_engine_has_a_kernel_for_the_loss():
    for entry in catalogue():
        assert entry.fused == (kernel(entry.name) is not None), entry.name


def test_variants_name_their_base_and_bases_their_variants():
    assert (ENTRIES["inner_giou"].base, ENTRIES["inner_giou"].variant) == ("giou", "inner")
    assert (ENTRIES["focaler_shape_iou"].base, ENTRIES["focaler_shape_iou"].variant) == ("shape_iou", "focaler")
    assert ENTRIES["giou"].variants == ("inner_giou", "focaler_giou")
    assert (ENTRIES["wiou"].base, ENTRIES["wiou"].variant, ENTRIES["wiou"].variants) == (None, None, ())
    for entry in catalogue():
        assert all(ENTRIES[name].base == entry.name for name in entry.variants)


def test_the_claims_are_the_registrys():
    for entry in catalogue():
        assert (entry.positive, entry.symmetric, entry.scale_invariant) == tuple(CLAIMS[entry.name])
    assert not ENTRIES["focal_eiou"].positive and not ENTRIES["focaler_iou"].positive
    assert not ENTRIES["inner_mpdiou"].scale_invariant and ENTRIES["inner_giou"].scale_invariant
