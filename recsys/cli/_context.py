"""What every command shares: the settings, read once per invocation."""
from __future__ import annotations

import click

from recsys.settings import Settings, load_settings, unknown_env_messages


def settings_of(ctx: click.Context) -> Settings:
    """The settings of this invocation (``--config`` and the environment), read once; an unknown
    ``RECSYS_*`` variable is warned about then."""
    if "settings" not in ctx.obj:
        for message in unknown_env_messages():
            click.echo(f"warning: {message}", err=True)
        ctx.obj["settings"] = load_settings(config_file=ctx.obj["config_file"])
    return ctx.obj["settings"]
