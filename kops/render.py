"""Jinja environment and rendering of node files and the compose bundle.

Templates live under ``templates/`` and render with ``StrictUndefined``: a missing value
is an error that names the template and its line, never an empty string in a config.
"""

from __future__ import annotations

from functools import lru_cache

import jinja2

from . import paths
from .errors import KopsError
from .launch import log_config_name


@lru_cache(maxsize=1)
def env() -> jinja2.Environment:
    e = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(paths.templates_dir())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    return e


def render_template(name: str, **ctx) -> str:
    try:
        return env().get_template(name).render(**ctx)
    except jinja2.TemplateSyntaxError as exc:
        raise KopsError(f"template {exc.name or name} line {exc.lineno}: {exc.message}",
                        hint="fix the template under templates/") from exc
    except jinja2.UndefinedError as exc:
        line = _template_line(exc, name)
        raise KopsError(f"template {name}{line}: {exc.message}",
                        hint="a value the template needs is missing from the render context") from exc


def _template_line(exc: BaseException, name: str) -> str:
    tb = exc.__traceback__
    lineno = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.endswith(name):
            lineno = tb.tb_lineno
        tb = tb.tb_next
    return f" line {lineno}" if lineno else ""


def default_log_config(version: str) -> tuple[str, str]:
    name = log_config_name(version)
    return name, render_template(f"log/{name}.j2", version=version)
