"""The CLI of users' own configs and data: `hwgen config show NAME|FILE` (print a config
as TOML to start a file from) and the `--data`/`--val-split` options the quant and
hardware commands share. Argument parsing only: quant/config_file.py and
quant/datasets.py do the work."""

from __future__ import annotations

import argparse


def _cmd_config_show(args: argparse.Namespace) -> int:
    from quant.config_file import config_to_toml, resolve_config

    print(config_to_toml(resolve_config(args.name)), end="")
    return 0


def register_config(sub) -> None:
    c = sub.add_parser("config", help="print a reference config as TOML",
                       description="Configs as TOML files (docs/usage.md): 'hwgen config show "
                                   "NAME' prints a reference config (digits-tiny, cifar-mid, "
                                   "cifar-paper) or checks and re-prints a TOML file.",
                       epilog="example: hwgen config show digits-tiny > my.toml")
    csub = c.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    s = csub.add_parser("show", help="print a config as TOML")
    s.add_argument("name", metavar="NAME|FILE", help="reference config name or TOML file")
    s.set_defaults(func=_cmd_config_show)


def add_data_arguments(p: argparse.ArgumentParser, what: str) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--data", metavar="PATH",
                   help=f"your data ({what}): a folder of class sub-folders of PNG/JPEG images "
                        "(flat, or inside train/ and test/) or an .npz with x (N, C, H, W) uint8 "
                        "and y (N,), optional split (N,) 0/1 (docs/usage.md); default: the "
                        "digits split for digits-shaped configs")
    g.add_argument("--val-split", type=float, default=0.2, metavar="F",
                   help="test fraction of data without a train/test split (seeded; default 0.2)")
