"""The shop's control over what reads show: merchandising rules (:mod:`recsys.control.rules`) and
feed shaping (:mod:`recsys.control.shaping`: boosts, buries, pins, exclusions, diversity)."""
from recsys.control.rules import Match, Rule, RuleBook
from recsys.control.shaping import NO_SHAPING, Hidden, Shaper, Shaping, shaper

__all__ = ["Match", "Rule", "RuleBook", "Shaping", "NO_SHAPING", "Hidden", "Shaper", "shaper"]
