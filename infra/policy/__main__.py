"""The llmplan policy pack; the rules live (and are tested) in llmplan.provision.policies."""

from __future__ import annotations

from pulumi_policy import PolicyPack

from llmplan.provision.policies import policies

PolicyPack(name="llmplan", policies=policies())
