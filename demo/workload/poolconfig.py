"""The demo app's pool settings, from env and from the pool config file (pure; unit-tested in
test/unit/demo/test_poolconfig.py).

The pool config file (named by POOL_CONFIG_FILE, typically a ConfigMap key mounted as a
directory, never with subPath, so the kubelet can update it) holds one setting a line:

    # comment lines and blank lines are ignored
    DB_POOL_SIZE=16
    DB_MAX_OVERFLOW=32
    DB_POOL_TIMEOUT=2
    REDIS_MAX_CONNECTIONS=50

Only these four keys are allowed, each at most once; a key the file leaves out keeps its value
from env (or the default). Any other line (an unknown key, a duplicate, a value that is not a
number in range) makes the whole file malformed: it is rejected with a message naming the line.
"""

DEFAULTS = {"DB_POOL_SIZE": 20, "DB_MAX_OVERFLOW": 40, "DB_POOL_TIMEOUT": 30.0, "REDIS_MAX_CONNECTIONS": 50}

# key -> (type, smallest allowed value, what the value means)
_RULES = {
    "DB_POOL_SIZE": (int, 0, "an integer >= 0"),
    "DB_MAX_OVERFLOW": (int, 0, "an integer >= 0"),
    "DB_POOL_TIMEOUT": (float, 0.001, "a number of seconds > 0"),
    "REDIS_MAX_CONNECTIONS": (int, 1, "an integer >= 1"),
}


class PoolConfigError(ValueError):
    """A setting that cannot be used; the message says where and what to fix."""


def _value(key, raw, where):
    kind, smallest, meaning = _RULES[key]
    try:
        value = kind(raw.strip())
    except ValueError:
        raise PoolConfigError(f"{where}: {key}={raw.strip()!r} is not {meaning}") from None
    if value < smallest:
        raise PoolConfigError(f"{where}: {key}={raw.strip()!r} is not {meaning}")
    return value


def settings_from_env(environ):
    """The four settings from env; an empty or unset variable takes the default."""
    settings = dict(DEFAULTS)
    for key in DEFAULTS:
        raw = environ.get(key, "")
        if raw.strip():
            settings[key] = _value(key, raw, f"env {key}")
    return settings


def parse_pool_config(text, source="pool config file"):
    """The settings a pool config file sets (only the keys it names)."""
    found = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        where = f"{source} line {number}"
        key, sep, raw = stripped.partition("=")
        key = key.strip()
        if not sep:
            raise PoolConfigError(f"{where}: expected KEY=VALUE, got {stripped!r}")
        if key not in _RULES:
            raise PoolConfigError(f"{where}: unknown key {key!r} (allowed: {', '.join(_RULES)})")
        if key in found:
            raise PoolConfigError(f"{where}: {key} is set twice")
        found[key] = _value(key, raw, where)
    return found


def effective_settings(environ, file_text=None, source="pool config file"):
    """env, then the file's keys over it (the file wins)."""
    settings = settings_from_env(environ)
    if file_text is not None:
        settings.update(parse_pool_config(file_text, source))
    return settings
