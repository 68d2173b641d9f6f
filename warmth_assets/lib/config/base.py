"""What every section shares, and the link from a setting to the resource field that holds it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the file, the key and the reason."""


class UnknownModel(ConfigError, KeyError):
    """A model slug the configuration does not list (a KeyError too, for lookups that fall back)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class Section(BaseModel):
    """One [section]: an unknown key is an error, so a typo fails at load instead of falling back to a default."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def setting(section: type[BaseModel], name: str) -> Any:
    """A resource field declared by the setting it holds: that setting's default and help text.

    A resource built from its settings (`from_settings`) gets every value from them; the field's own
    default only serves one built without (tests, benchmarks), which must then behave as the defaults of
    the settings say, not as a second copy of them that drifts.
    """
    info = section.model_fields[name]
    if info.default_factory is not None:
        return Field(default_factory=info.default_factory, description=info.description)
    return Field(info.default, description=info.description)


def shared_values(settings: BaseModel, target: type[BaseModel]) -> dict[str, Any]:
    """The values of `settings` that `target` declares under the same name: what a `from_settings` passes on,
    so a setting added to both reaches the resource without another line to copy it."""
    return settings.model_dump(include=set(type(settings).model_fields) & set(target.model_fields))
