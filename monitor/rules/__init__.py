"""The policy rule engine: rule packs (YAML data) applied by registered detectors."""

from monitor.rules.engine import RuleEngine
from monitor.rules.pack import Rule, RulePack, load_pack

__all__ = ["Rule", "RuleEngine", "RulePack", "load_pack"]
