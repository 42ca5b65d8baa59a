"""What the commands share: the settings, read once per invocation, and the Redis they use."""
from __future__ import annotations

from pathlib import Path

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


def which_redis(settings: Settings) -> str:
    """The Redis a command uses, for the user to see: the embedded server's folder, or the URL
    without its password."""
    from recsys.store.connection import redact

    if settings.redis.url is None:
        return f"embedded Redis in {Path(settings.state_dir) / 'redis'} (set RECSYS_REDIS_URL to share one)"
    return f"Redis at {redact(settings.redis.url)}"


class RedisSession:
    """The configured Redis, or the embedded one started for the length of a command."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.embedded = None

    def __enter__(self):
        from recsys.store import EmbeddedRedis, connect

        url = self.settings.redis.url
        if url is None:
            self.embedded = EmbeddedRedis(self.settings.state_dir / "redis").start()
            url = self.embedded.url
        return connect(url, socket_timeout=30)

    def __exit__(self, *exc):
        if self.embedded is not None:
            self.embedded.stop()
