"""Secret values kept out of every message, log record and JSON output.

A secret (`{secret: NAME}` in the project file) is read only when a connection opens
(`config.reveal`); at that moment its value is remembered here, and `redact` replaces it — and
each part of it a driver might print on its own — by `***`. The CLI redacts every error message,
every `--json` document and (through `install_log_redaction`) every log record, the server's too;
`LakestackError` redacts its own text, so a library user's message is clean as well.

Drivers show pieces of a connection URL rather than the URL: a password with a raw `@`
(`postgresql://lake:Hunt@r2Secret@host/db`) is split by one parser at the first `@` and by another
at the last, and the error names the "host" `r2Secret@host`. So for a URL the user-info, the
password, both in raw, percent-decoded and percent-encoded form, and every run of the password
between URL delimiters (`@ : / % ? # & = ; ,`) that is at least `MIN_PART` characters long are
redacted. Shorter runs are left: redacting every "ab" would garble messages and hide little. A value
that is not a URL (a token, a host list, `host=... password=...`) is redacted whole, each
comma-separated item, and the runs of any `password=`/`secret=`/`token=` value in it; its other
pieces (a host, a port) are not secrets on their own and stay readable.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any, TextIO
from urllib.parse import parse_qsl, quote, unquote

MIN_PART = 4  # shortest piece of a secret redacted on its own
MIN_VALUE = 4  # shortest whole secret value redacted
MASK = "***"
_DELIMITERS = re.compile(r"[@:/%?#&=;,\s]")
_SECRET_KEYS = re.compile(r"pass|secret|token|key|credential", re.IGNORECASE)
_KEYWORD = re.compile(r"(\w*(?:pass|secret|token|credential)\w*)\s*=\s*('[^']*'|\"[^\"]*\"|\S+)", re.IGNORECASE)

_lock = threading.Lock()
_parts: set[str] = set()
_pattern: re.Pattern[str] | None = None
_provider: Any = None  # the process's secrets provider (`lakestack.secrets`); None: environment variables


def use_provider(provider: Any) -> None:
    """Resolve `{secret: NAME}` through `provider` (a `lakestack.secrets.SecretsProvider`) from now
    on; `Lake` installs its environment's provider when it opens."""
    global _provider
    _provider = provider


def lookup(name: str) -> str:
    """The value of the secret `name` from the installed provider, remembered for redaction.

    Raises ConfigError (from the provider) when the secret does not exist."""
    provider = _provider
    if provider is None:
        from lakestack.secrets import EnvProvider

        provider = EnvProvider()
    value: str = provider.get(name)
    remember(value)  # from now on redacted from every message, log record and JSON output
    return value


def remember(value: str) -> None:
    """Redact `value` (a resolved secret) and its parts from now on."""
    global _pattern
    found = {p for p in secret_parts(value) if p}
    with _lock:
        if found <= _parts:
            return
        _parts.update(found)
        ordered = sorted(_parts, key=len, reverse=True)  # longest first: the URL before its password
        _pattern = re.compile("|".join(map(re.escape, ordered)))


def forget() -> None:
    """Stop redacting everything remembered (tests; a process that resolves secrets keeps them)."""
    global _pattern
    with _lock:
        _parts.clear()
        _pattern = None


def remember_url_password(url: str) -> None:
    """A connection URL written in the project file (not a secret reference) may still hold a
    password: redact that part, not the whole URL."""
    userinfo = _userinfo(url)
    if userinfo and ":" in userinfo:
        for part in _password_parts(userinfo.partition(":")[2]):
            remember(part)


def redact(text: str) -> str:
    """`text` with every remembered secret part replaced by `***`."""
    pattern = _pattern
    return pattern.sub(MASK, text) if pattern is not None and text else text


def redact_tree(value: Any) -> Any:
    """A JSON-able value with every string (keys too) redacted."""
    if _pattern is None:
        return value
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact_tree(k): redact_tree(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_tree(v) for v in value]
    return value


def secret_parts(value: str) -> set[str]:
    """The strings to redact for one secret value."""
    parts = {v for v in (value, unquote(value)) if len(v) >= MIN_VALUE}
    if "://" in value:
        userinfo = _userinfo(value)
        if ":" in userinfo:  # a user name alone is no secret; with a password it is
            parts |= {u for u in (userinfo, unquote(userinfo)) if len(u) >= MIN_PART}
            parts |= _password_parts(userinfo.partition(":")[2])
        for key, item in parse_qsl(value.partition("?")[2], keep_blank_values=False):
            if _SECRET_KEYS.search(key):
                parts |= _password_parts(item)
    else:  # a token, a password, a host list, or a libpq-style "host=... password=..." string
        parts |= {v.strip() for v in value.split(",") if len(v.strip()) >= MIN_VALUE}
        for match in _KEYWORD.finditer(value):
            parts |= _password_parts(match.group(2).strip("'\""))
    return parts


def _userinfo(url: str) -> str:
    """What lies between `scheme://` and the last `@` of the authority (a raw `@` or `/` in a
    password still belongs to it)."""
    rest = url.partition("://")[2]
    head = rest.rpartition("@")[0] if "@" in rest else ""
    return head


def _password_parts(password: str) -> set[str]:
    forms = {password, unquote(password), quote(password, safe=""), quote(unquote(password), safe="")}
    out = {f for f in forms if len(f) >= MIN_VALUE}
    for form in forms:
        out |= _runs(form)
    return out


def _runs(text: str) -> set[str]:
    """Every substring of `text` between delimiters (or its ends), at least MIN_PART long."""
    cuts = [0, *(m.start() for m in _DELIMITERS.finditer(text)), len(text)][:64]
    out: set[str] = set()
    for i, start in enumerate(cuts):
        for end in cuts[i + 1 :]:
            piece = text[start:end].strip("@:/%?#&=;, \t\n")
            if len(piece) >= MIN_PART:
                out.add(piece)
    return out


def _scrub(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a malformed call; logging reports that itself
        return
    redacted = redact(message)
    if redacted != message:  # leave other records alone: some formatters read their args (uvicorn's access log)
        record.msg, record.args = redacted, None
    if record.exc_info and not record.exc_text:
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


_installed = False


def install_log_redaction() -> None:
    """Redact every log record (and Python warning) from now on, whichever logger or handler
    (uvicorn's too) emits it.

    A filter on one handler would miss handlers added later (uvicorn configures its own), so the
    redaction sits in the record factory, which every record passes once.
    """
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
    make = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        if _pattern is not None:
            _scrub(record)
        return record

    logging.setLogRecordFactory(factory)
    _redact_warnings()


def _redact_warnings() -> None:
    """Python warnings do not pass through logging unless captured (and captured, they vanish
    without a handler): redact them where they are shown."""
    import warnings

    show = warnings.showwarning

    def redacted(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        show(redact(str(message)) if _pattern is not None else message, category, filename, lineno, file, line)

    warnings.showwarning = redacted
