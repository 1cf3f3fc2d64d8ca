"""Run the Pulumi program (infra/__main__.py) under mocks and record what it registers.

No Pulumi CLI or cloud API can run here: `pulumi.runtime.set_mocks` stands in for the engine.
Every resource is recorded with its inputs; mocks return the computed outputs the program
reads (ARNs, ids, kubeconfig) and answer the invokes it makes (account id, default VPC).
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from helpers import ROOT

PROJECT = "llm-deploy-planner"
ACCOUNT = "123456789012"


class RecordingMocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.resources: list[pulumi.runtime.MockResourceArgs] = []
        self.calls: list[pulumi.runtime.MockCallArgs] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.resources.append(args)
        outputs = dict(args.inputs)
        if args.typ.startswith("kubernetes:"):
            metadata = dict(outputs.get("metadata") or {})
            metadata.setdefault("name", args.name)
            outputs["metadata"] = metadata
        if args.typ.startswith("aws:"):
            outputs.setdefault("arn", f"arn:aws:mock:::{args.typ.split(':')[-1]}/{args.name}")
            outputs.setdefault("name", args.name)
        if args.typ == "eks:index:Cluster":
            outputs["kubeconfigJson"] = json.dumps({"apiVersion": "v1", "clusters": []})
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[Any]]:
        self.calls.append(args)
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {"accountId": ACCOUNT, "arn": f"arn:aws:iam::{ACCOUNT}:user/ci",
                    "id": ACCOUNT, "userId": "ci"}, []
        if args.token == "aws:ec2/getVpc:getVpc":
            return {"id": args.args.get("id") or "vpc-default", "cidrBlock": "172.31.0.0/16"}, []
        if args.token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            known = ["use1-az1", "use1-az2", "use1-az3", "use1-az4"]
            zones = [z for z in known if z not in args.args.get("excludeZoneIds", [])]
            return {"id": "us-east-1", "names": [f"zone-{z}" for z in zones],
                    "zoneIds": zones, "groupNames": []}, []
        if args.token == "aws:ec2/getSubnets:getSubnets":
            # the default VPC has a subnet in each zone, us-east-1e (use1-az3) too
            wanted = {f["name"]: f["values"] for f in args.args.get("filters", [])}
            zones = {"use1-az1": "subnet-a", "use1-az2": "subnet-b", "use1-az3": "subnet-e"}
            ids = [subnet for zone, subnet in zones.items()
                   if zone in wanted.get("availability-zone-id", zones)]
            return {"id": "subnets", "ids": ids}, []
        return {}, []

    def of_type(self, type_: str) -> list[pulumi.runtime.MockResourceArgs]:
        return [r for r in self.resources if r.typ == type_]

    def named(self, name: str) -> pulumi.runtime.MockResourceArgs:
        return next(r for r in self.resources if r.name == name)


@dataclass
class ProgramRun:
    mocks: RecordingMocks
    exports: dict[str, Any] = field(default_factory=dict)


def stack_values(path: Path) -> dict[str, Any]:
    """The `llm-deploy-planner:` keys of a stack file, as Pulumi hands them to the program."""
    config = yaml.safe_load(path.read_text())["config"]
    return {k.split(":", 1)[1]: v for k, v in config.items() if k.startswith(f"{PROJECT}:")}


def run_program(values: dict[str, Any], secrets: dict[str, str],
                stack: str = "test") -> ProgramRun:
    """infra/__main__.py under mocks with these config values and secrets."""
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False)
    config = {f"{PROJECT}:{k}": v if isinstance(v, str) else json.dumps(v)
              for k, v in {**values, **secrets}.items()}
    pulumi.runtime.set_all_config(config, [f"{PROJECT}:{k}" for k in secrets])
    spec = importlib.util.spec_from_file_location("infra_program", ROOT / "infra" / "__main__.py")
    assert spec is not None and spec.loader is not None
    program = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(program)
    run = ProgramRun(mocks)

    @pulumi.runtime.test
    def collect() -> pulumi.Output[Any]:
        outs = {"gateway": program.gateway.endpoint}
        if hasattr(program, "serving"):
            outs["serving"] = program.serving.endpoint
        return pulumi.Output.all(**outs).apply(run.exports.update)

    collect()
    return run
