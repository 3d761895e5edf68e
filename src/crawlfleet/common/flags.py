"""Command-line flags that also read ``CRAWLFLEET_*`` environment variables.

Every program (coordinator, worker, CLI) builds its flags through ``EnvFlags``: each flag defaults to
its environment variable (``--tls-ca`` reads ``CRAWLFLEET_TLS_CA``), then to a named constant, and
``--help`` shows both the default and the variable. String defaults go through the flag's ``type``,
so a bad variable fails with the same message as a bad flag.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from typing import Any

ENV_PREFIX = "CRAWLFLEET_"
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off", ""})

Convert = Callable[[str], Any]


def env_name(flag: str) -> str:
    """The variable a flag reads: ``--tls-ca`` -> ``CRAWLFLEET_TLS_CA``."""
    return ENV_PREFIX + flag.removeprefix("--").replace("-", "_").upper()


def parse_bool(text: str) -> bool:
    """``1/true/yes/on`` or ``0/false/no/off/""`` (any case); raises ``ValueError`` otherwise."""
    word = text.strip().lower()
    if word not in TRUE_WORDS | FALSE_WORDS:
        raise ValueError(f"not a boolean: {text!r}")
    return word in TRUE_WORDS


def positive_int(text: str) -> int:
    """A flag type: a whole number of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """A flag type: a whole number of at least 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def positive_float(text: str) -> float:
    """A flag type: a number above 0."""
    value = float(text)
    if not value > 0:  # also rejects NaN
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def non_negative_float(text: str) -> float:
    """A flag type: a number of at least 0."""
    value = float(text)
    if not value >= 0:  # also rejects NaN
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


def comma_list(text: str) -> tuple[str, ...]:
    """A flag type: ``"a, b,a"`` -> ``("a", "b")`` (blanks and repeats dropped, order kept)."""
    return tuple(dict.fromkeys(word.strip() for word in text.split(",") if word.strip()))


def show_default(value: object) -> str:
    """How ``--help`` prints a default: floats short, sequences comma-separated, switches on/off."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple | list):
        return ",".join(str(item) for item in value)
    return str(value)


class EnvFlags:
    """Adds flags to one parser, each defaulting to its ``CRAWLFLEET_*`` variable.

    ``repeated``: a second copy of flags already added elsewhere (a subcommand's, so options may
    follow the command); its defaults are suppressed so that it never overrides the first copy.
    """

    def __init__(
        self,
        parser: argparse.ArgumentParser,
        env: Mapping[str, str],
        *,
        repeated: bool = False,
        group: argparse._ArgumentGroup | None = None,
    ) -> None:
        self.parser = parser
        self.env = env
        self.repeated = repeated
        self._target = group or parser

    def group(self, title: str, description: str | None = None) -> EnvFlags:
        """The same flags, listed under their own heading in ``--help``."""
        group = self.parser.add_argument_group(title, description)
        return EnvFlags(self.parser, self.env, repeated=self.repeated, group=group)

    def lookup(self, flag: str, aliases: Sequence[str] = (), variable: str | None = None) -> tuple[str, str] | None:
        """The variable that sets ``flag`` and its value, or None; ``aliases`` are read first.
        ``variable`` replaces the flag's own ``CRAWLFLEET_*`` name."""
        for name in aliases:
            if self.env.get(name):  # an empty alias (DATABASE_URL=) does not hide the prefixed variable
                return name, self.env[name]
        name = variable or env_name(flag)
        return (name, self.env[name]) if name in self.env else None

    def add(
        self,
        flag: str,
        default: object,
        help_text: str,
        *,
        type: Convert = str,  # argparse's name
        metavar: str | None = None,
        secret: bool = False,
        aliases: Sequence[str] = (),
        variable: str | None = None,
        **kwargs: Any,
    ) -> argparse.Action:
        """A flag taking a value; ``secret`` keeps the variable's value out of ``--help``;
        ``variable`` names its variable when the flag's own name would mean something else."""
        found = self.lookup(flag, aliases, variable)
        value = found[1] if found is not None else default
        action = self._target.add_argument(
            flag,
            default=argparse.SUPPRESS if self.repeated else value,
            type=type,
            metavar=metavar,
            **kwargs,
        )
        action.help = self._help(flag, help_text, default, found, secret=secret, aliases=aliases, variable=variable)
        return action

    def add_without_env(self, flag: str, help_text: str, **kwargs: Any) -> argparse.Action:
        """A flag that reads no variable (a repeatable one, or one whose variable means something else)."""
        return self._target.add_argument(flag, help=help_text.replace("%", "%%"), **kwargs)

    def add_switch(self, flag: str, default: bool, help_text: str, *, negatable: bool = True) -> argparse.Action:
        """An on/off flag (``--tls``/``--no-tls``); the variable holds a boolean word.

        ``negatable=False`` gives a plain switch (``--no-migrate``) for flags already named negatively.
        """
        found = self.lookup(flag)
        value = default
        if found is not None and not self.repeated:  # the first copy already checked the variable
            try:
                value = parse_bool(found[1])
            except ValueError as exc:
                self.parser.error(f"{found[0]}: {exc}")
        action = self._target.add_argument(
            flag,
            action=argparse.BooleanOptionalAction if negatable else "store_true",
            default=argparse.SUPPRESS if self.repeated else value,
        )
        # Set after construction: BooleanOptionalAction appends its own "(default: ...)" on 3.11.
        action.help = self._help(flag, help_text, default, found, secret=False, aliases=())
        return action

    @staticmethod
    def _help(
        flag: str,
        help_text: str,
        default: object,
        found: tuple[str, str] | None,
        *,
        secret: bool,
        aliases: Sequence[str],
        variable: str | None = None,
    ) -> str:
        names = " or ".join((*aliases, variable or env_name(flag)))
        if found is not None and not secret:
            note = f"default: {found[1]!r} from {found[0]}"
        elif default in (None, ""):
            note = f"env {names}"
        else:
            note = f"default: {show_default(default)}; env {names}"
        return f"{help_text} ({note})".replace("%", "%%")  # argparse %-formats help strings
