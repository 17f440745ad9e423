"""The command line's structure: stage-owned flags, one X,Y,W,H parser, one declaration per training option."""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

import pytest

import retrocolor
from models.config import TrainConfig, resume_new_fields
from utils.cli import crop_rect, screen_region


def test_one_rectangle_parser_for_crop_and_region() -> None:
    assert crop_rect("1,2,160,144") == screen_region("1,2,160,144") == (1, 2, 160, 144)
    assert screen_region("-1920,0,640,576") == (-1920, 0, 640, 576)  # a monitor left of the primary
    for bad in ("-1,0,10,10", "1,2,3", "a,b,c,d", "0,0,0,10"):
        with pytest.raises(argparse.ArgumentTypeError):
            crop_rect(bad)
    with pytest.raises(argparse.ArgumentTypeError):
        screen_region("0,0,10,-1")
    p = retrocolor.build_parser()
    assert p.parse_args(["extract", "v.mp4", "-o", "d", "--crop", "0,0,320,288"]).crop == (0, 0, 320, 288)
    assert p.parse_args(["live", "--region=-5,0,320,288"]).region == (-5, 0, 320, 288)


def test_train_flags_come_from_the_config_fields() -> None:
    """Each TrainConfig field with help text is a flag; absent flags keep the field's default."""
    p = retrocolor.build_parser()
    train = next(a for a in p._subparsers._group_actions[0].choices.items() if a[0] == "train")[1]  # noqa: SLF001
    flags = {a.dest for a in train._actions if a.dest != "help"}  # noqa: SLF001
    declared = {f.name for f in fields(TrainConfig) if f.metadata.get("help")}
    assert flags == declared and {"patience", "steps_per_epoch", "val_input"} <= flags
    a = p.parse_args(["train", "--data", "d", "--out", "o", "--cache-dir", "none"])
    cfg = TrainConfig.from_args(a)
    default = TrainConfig(data=[Path("d")], out=Path("o"))
    assert {f.name: getattr(cfg, f.name) for f in fields(cfg)} == {f.name: getattr(default, f.name)
                                                                   for f in fields(default)}
    text = " ".join(train.format_help().split())
    assert "held out without --val (default: 0.1)" in text and "--patience PATIENCE" in text  # default from the field


def test_resume_takes_only_the_declared_fields_from_the_new_command() -> None:
    assert resume_new_fields() == {"out", "epochs", "patience", "device", "amp", "workers", "resume", "gan",
                                   "gan_critic_steps", "gan_epochs", "cache_dir", "show_progress"}


def test_loss_flag_choices_are_the_known_losses() -> None:
    """config.py is torch-free, so it lists the loss names itself; they must match models.losses."""
    pytest.importorskip("torch")
    from models.losses import LOSS_KINDS

    loss = next(f for f in fields(TrainConfig) if f.name == "loss")
    assert tuple(loss.metadata["argparse"]["choices"]) == LOSS_KINDS
