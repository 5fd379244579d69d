"""ReportConfig: the report's options in one model — checked where made, the CLI's help derived from it."""

from __future__ import annotations

import pytest

from corpusforge.errors import ReportError
from corpusforge.shift.config import ReportConfig, make_report_config
from corpusforge.train.config import TrainConfig


@pytest.mark.parametrize("values, message", [
    ({"max_probes": 0}, "--max-probes must be at least 1, got 0"),
    ({"null_draws": 10_000}, "--null-draws must be at most 1000, got 10000"),
    ({"min_effect": float("nan")}, "--min-effect must be a finite number"),
    ({"dtype": "int8"}, "--dtype "),
    ({"max_prob": 3}, "unknown key(s) ['max_prob']"),
])
def test_a_bad_value_is_one_report_error_naming_the_option(values, message):
    with pytest.raises(ReportError) as info:
        make_report_config(**values)
    assert message in str(info.value)


def test_values_go_on_top_of_a_config_and_paths_become_text(tmp_path):
    base = ReportConfig(max_probes=8, transfer=True)
    cfg = make_report_config(base, corpus=tmp_path, max_probes=4)
    assert (cfg.max_probes, cfg.transfer, cfg.corpus, cfg.model) == (4, True, str(tmp_path), None)
    assert make_report_config().max_controls == 20 and make_report_config(max_controls=None).max_controls is None


def test_the_cli_help_is_the_fields_and_shares_device_help_with_training(run):
    text = " ".join(run("report", "--help").output.split())
    for field in ("probes", "controls", "corpus", "max_probes", "max_controls", "chat", "transfer"):
        words = " ".join(ReportConfig.model_fields[field].description.split())[:50]
        assert words in text, field
    assert ReportConfig.model_fields["device"].description == TrainConfig.model_fields["device"].description
    assert ReportConfig.model_fields["dtype"].description == TrainConfig.model_fields["dtype"].description


def test_a_bad_flag_value_is_a_usage_error_naming_the_flag(run, tmp_path):
    """The option's range is the field's (1..100,000): click refuses it before anything is loaded (exit 2)."""
    (tmp_path / "adapter").mkdir()
    result = run("report", "--adapter", tmp_path / "adapter", "--out", tmp_path / "r", "--max-probes", "0")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "'--max-probes': 0 is not in the range 1<=x<=100000" in result.output
    assert not (tmp_path / "r").exists()
