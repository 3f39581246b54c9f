"""The console script's help pages render (argparse formats help strings with %)."""

import pytest
from ted_prune.cli import main


@pytest.mark.parametrize("argv", [["--help"], ["demo", "--help"], ["bench", "--help"]])
def test_help_renders(argv, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0
    assert "usage: ted-prune" in capsys.readouterr().out
