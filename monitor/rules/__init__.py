"""The policy rule engine: rule packs (YAML data) applied by registered detectors."""

from monitor.rules.engine import RuleEngine
from monitor.rules.pack import PackError, Rule, RulePack, load_pack
from monitor.rules.settings import RulesSettings

__all__ = ["PackError", "Rule", "RuleEngine", "RulePack", "RulesSettings", "load_pack"]
