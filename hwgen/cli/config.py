"""`hwgen config show NAME|FILE`: print a config as TOML to start a file from (argument
parsing and printing only: quant/config_file.py does the work)."""

from __future__ import annotations

import argparse

from quant.config_file import config_to_toml, resolve_config


def _cmd_config_show(args: argparse.Namespace) -> int:
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
