"""graphir.table: the shared fixed-width table formatter."""
from graphir.table import format_table


def test_columns_align_and_the_last_cell_runs_on():
    text = format_table([("pass", "seconds", "counts"), ("fold-constants", "0.125", "folded=3"),
                         ("dce", "12.5", ""), ("total  (a free-text line that is wider than any column)",)],
                        align="lr")
    assert text.splitlines() == [
        "pass            seconds  counts",
        "fold-constants    0.125  folded=3",
        "dce                12.5",
        "total  (a free-text line that is wider than any column)",
    ]


def test_right_aligned_last_column_is_padded_and_rules_span_the_table():
    text = format_table([("op type", "bf16"), ("Conv2D", 12), ("MatMul", 3)], align="lr", indent="  ",
                        rules=(1, 3))
    assert text.splitlines() == [
        "  op type  bf16",
        "  -------------",
        "  Conv2D     12",
        "  MatMul      3",
        "  -------------",
    ]


def test_empty_table():
    assert format_table([]) == ""
