"""One command-line grammar: shared options parse one way, old spellings still work, every option says what it does."""
from __future__ import annotations

import argparse
import re

import pytest

from gaze3d.cli import build_parser, main
from gaze3d.cli._args import normalise_argv
from gaze3d.display import DisplayGeometry

PARSER = build_parser()


def _parse(argv):
    return PARSER.parse_args(normalise_argv(argv))


def _subparsers(parser, prefix=()):
    """``(command words, parser)`` for every (sub)command."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield prefix + (name,), sub
                yield from _subparsers(sub, prefix + (name,))


COMMANDS = list(_subparsers(PARSER))


@pytest.mark.parametrize("words,parser", COMMANDS, ids=[" ".join(w) for w, _ in COMMANDS])
def test_every_option_has_help(words, parser):
    missing = [a.option_strings[-1] if a.option_strings else a.dest for a in parser._actions
               if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))
               and a.help != argparse.SUPPRESS and not (a.help or "").strip()]
    assert not missing, f"gaze3d {' '.join(words)}: options without help: {missing}"


VIEWPORT = [  # (argv before the option, after) of every command that takes --viewport
    (["attention", "s.ply", "r.gaze3d", "-o", "o.ply"], "viewport"),
    (["fixations", "r.gaze3d", "-o", "e.tsv"], "viewport"),
    (["view", "s.ply"], "viewport"),
]


@pytest.mark.parametrize("argv,dest", VIEWPORT, ids=[a[0] for a, _ in VIEWPORT])
@pytest.mark.parametrize("spelling", [["--viewport", "0.1,0.2,0.5,0.6"], ["--viewport", "0.1", "0.2", "0.5", "0.6"],
                                      ["--viewport=0.1,0.2,0.5,0.6"]])
def test_viewport_one_grammar_old_spelling_kept(argv, dest, spelling):
    assert getattr(_parse(argv + spelling), dest) == (0.1, 0.2, 0.5, 0.6)
    assert getattr(_parse(argv), dest) == (0.0, 0.0, 1.0, 1.0)


DISPLAY = [
    ["fixations", "r.gaze3d", "-o", "e.tsv"],
    ["calibrate", "validate", "--headless"],
    ["calibrate", "drift", "--headless"],
]


@pytest.mark.parametrize("argv", DISPLAY, ids=[" ".join(a[:2]) for a in DISPLAY])
def test_display_options_default_to_display_geometry_and_take_both_spellings(argv):
    d = DisplayGeometry()
    args = _parse(argv)
    assert args.screen_mm == (d.width_mm, d.height_mm) and args.distance_mm == d.distance_mm
    assert _parse(argv + ["--screen-mm", "600", "340"]).screen_mm == (600.0, 340.0)
    assert _parse(argv + ["--screen-mm", "600,340", "--distance-mm", "700"]).distance_mm == 700.0


def test_record_export_display_is_optional_and_parsed_alike():
    args = _parse(["record", "export", "r.gaze3d", "out"])
    assert args.screen_mm is None and args.distance_mm is None and args.screen is None
    args = _parse(["record", "export", "r.gaze3d", "out", "--screen-mm", "600", "340", "--screen", "2560x1440"])
    assert args.screen_mm == (600.0, 340.0) and args.screen == (2560, 1440)


BAD = [  # argv, the option the one-line error must name
    (["view", "s.ply", "--window", "1280"], "--window"),
    (["view", "s.ply", "--window", "0x800"], "--window"),
    (["view", "s.ply", "--viewport", "0,0,1"], "--viewport"),
    (["attention", "s", "r", "-o", "o.ply", "--viewport", "a,b,c,d"], "--viewport"),
    (["fixations", "r", "-o", "e.tsv", "--screen-mm", "-5,3"], "--screen-mm"),
    (["fixations", "r", "-o", "e.tsv", "--distance-mm", "0"], "--distance-mm"),
    (["calibrate", "validate", "--headless", "--screen-px", "1920"], "--screen-px"),
    (["calibrate", "drift", "--headless", "--target", "x,y"], "--target"),
    (["render", "s.ply", "--out", "o.png", "--window", "10x10"], "--window"),
    (["record", "export", "r", "o", "--screen", "big"], "--screen"),
]


@pytest.mark.parametrize("argv,option", BAD, ids=[f"{a[0]} {o}" for a, o in BAD])
def test_bad_values_are_one_line_naming_the_option(argv, option, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"gaze3d {argv[0]}: error: argument {option}"), err


def test_the_tracker_help_example_is_an_option_the_source_takes():
    from gaze3d.tracker.plugins import make_source, parse_options

    tracker = dict(COMMANDS)[("tracker",)]
    opt = next(a for a in tracker._actions if "--opt" in a.option_strings)
    example = re.search(r"--opt (\S+)", opt.help).group(1)
    make_source("sim", parse_options([example]))        # an unknown option raises InputError


def test_a_checkpoint_the_model_cannot_use_is_one_line(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    pytest.importorskip("safetensors")
    import json

    import numpy as np
    from safetensors.torch import save_file

    from gaze3d.io import save_scan
    from gaze3d.models.checkpoint import FORMAT
    from gaze3d.models.train import default_interactive_config
    from gaze3d.scan import PointCloud

    torch.set_num_threads(1)
    ckpt = tmp_path / "other.safetensors"
    config = default_interactive_config().to_dict()
    save_file({"not.a.layer": torch.zeros(3)}, str(ckpt), metadata={"format": FORMAT, "config": json.dumps(config)})
    rng = np.random.default_rng(0)
    save_scan(PointCloud(xyz=rng.random((300, 3))), tmp_path / "c.ply")
    np.save(tmp_path / "a.npy", rng.random(300).astype(np.float32))
    code = main(["segment", str(tmp_path / "c.ply"), "--attention", str(tmp_path / "a.npy"),
                 "--model", str(ckpt), "-o", str(tmp_path / "o.ply")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("gaze3d segment: error: --model ") and str(ckpt) in err[0]
    assert not (tmp_path / "o.ply").exists()
