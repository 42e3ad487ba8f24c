"""Flow mappings that read like unquoted references: `seed: {seed}`, `name: {model.name}`.

YAML reads an unquoted `{seed}` as the mapping `{seed: null}`: the config silently gets a
mapping where a reference was meant (and, under `__default__`, only a "new key" warning). A
flow mapping whose keys all look like references and all have no value is almost certainly
that mistake: `loading` warns about it, and refuses it in `__run__`.
"""

import re
from typing import NamedTuple

from yaml.nodes import MappingNode, ScalarNode

from expyrun.config.keys import KeyPath
from expyrun.config.report import Origin

_NULL_TAG = "tag:yaml.org,2002:null"
# Compiled when first used (re caches it): only a flow mapping needs it.
_REFERENCE_KEY = r"(?:[A-Za-z0-9_.]|\\\.)+"  # what `{a.b}` may hold (`interpolation`)


class UnquotedReference(NamedTuple):
    """A flow mapping written where a reference was meant: `seed: {seed}`."""

    path: KeyPath
    origin: Origin
    text: str  # `{seed}`; `{a, b}` for several keys

    def message(self) -> str:
        """What to say about it."""
        return f'write "{self.text}" in quotes: YAML reads {self.text} as a mapping'


def unquoted_reference(
    node: MappingNode, path: KeyPath, origin: Origin
) -> UnquotedReference | None:
    """The mistake a flow mapping `node` at `path` looks like, or None."""
    keys = []
    for key_node, value_node in node.value:
        if not (
            type(key_node) is ScalarNode
            and not key_node.style  # plain: None, or "" from libyaml
            and re.fullmatch(_REFERENCE_KEY, key_node.value)
            and type(value_node) is ScalarNode
            and value_node.tag == _NULL_TAG
            and not value_node.value
        ):
            return None
        keys.append(key_node.value)
    return UnquotedReference(path, origin, "{" + ", ".join(keys) + "}")
