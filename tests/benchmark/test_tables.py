"""Table cells: signed differences."""

from recbole_dnr.benchmark.tables import signed, signed_spread


def test_a_difference_that_rounds_to_zero_is_plus_zero():
    assert signed(-0.00004) == "+0.0000" and signed(0.01234) == "+0.0123" and signed(-0.5) == "-0.5000"


def test_several_differences_are_mean_and_sample_std():
    assert signed_spread([0.01, 0.03]) == "+0.0200 ± 0.0141"
    assert signed_spread([-0.00001]) == "+0.0000"
