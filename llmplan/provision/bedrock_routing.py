"""Which Bedrock model id the gateway calls, and where AWS may then process the data.

AWS answers a Bedrock call one of three ways (Bedrock user guide, docs.aws.amazon.com/
bedrock/latest/userguide/):
- the model's own id: processed in the Region called (on-demand, in-Region);
- a geographic cross-Region inference profile (`us.`, `eu.`, `apac.`, `au.`, `ca.`, `jp.`,
  `us-gov.` ids): processed in any of the profile's destination Regions for the Region the
  call is made from, all in that geography ("Geographic cross-Region inference",
  geographic-cross-region-inference.html; the destinations of each source Region:
  "Supported Regions and models for inference profiles", inference-profiles-support.html);
- the global profile (`global.` ids): processed in any commercial Region ("Global
  cross-Region inference", global-cross-region-inference.html).

The catalog's `bedrock_routing` says which of these a model has from which source Region, and
where each goes. The stack calls Bedrock from `awsRegion`, which must lie in the deployment's
`region` and in the scenario's `data_residency`. Of the routes callable from there, the one
taken is the first of: the model in the Region; a geographic profile whose destinations stay
in the deployment's geography; the catalog's own id; another geographic profile; the global
profile; among those that keep every destination in `data_residency` (the global profile never
does, once one is set). When none does, the stack is refused, naming the deployment, the
Region and the model, with what the catalog knows of the model elsewhere.

Regions and areas: a deployment's `region` and the `data_residency` entries are an AWS Region
(eu-central-1) or an area such as `eu` or `us`; a Region lies in an area it equals or whose
name its own starts with, up to a dash (scenario.models.region_within: eu-central-1 lies in
eu-central-1, eu-central and eu; not in eu-central-2 nor in us), as the decision checks it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from llmplan.catalog import BEDROCK_GLOBAL, CloudModelSpec, bedrock_profile_prefix
from llmplan.provision.stack_config import Plan
from llmplan.scenario.cloud import CloudDeployment
from llmplan.scenario.models import region_within as within

RouteKind = Literal["in_region", "geographic", "global"]

#: What a route's rank says (lower first): see the module doc.
_IN_REGION, _IN_GEOGRAPHY, _CATALOG_ID, _OTHER_GEOGRAPHY, _GLOBAL = range(5)


class RouteError(ValueError):
    """No Bedrock route keeps the plan's data where it may go (the message says what to do).

    `setting`: the Region called is what is wrong (unset, or outside the deployment's region
    or the data residency), not the routes from it."""

    def __init__(self, message: str, *, setting: bool = False) -> None:
        super().__init__(message)
        self.setting = setting


@dataclass(frozen=True)
class BedrockRoute:
    """How the gateway calls the plan's Bedrock model."""

    model_id: str                   # what the gateway sends, and CloudWatch's ModelId
    kind: RouteKind
    source_region: str              # the Region called (awsRegion)
    foundation_model: str           # the model's own id
    destinations: tuple[str, ...]   # where AWS may process a call; () for global: anywhere

    def describe(self) -> str:
        """The route in words, for notes and errors."""
        if self.kind == "in_region":
            return f"{self.model_id} in {self.source_region}"
        if self.kind == "global":
            return f"the global profile {self.model_id} (any commercial Region)"
        return f"the {self.model_id.split('.', 1)[0]} profile {self.model_id} " \
               f"({', '.join(self.destinations)})"


def geography(region: str) -> str:
    """The area a region or area belongs to: its first part (eu of eu-central-1, us of us)."""
    return region.split("-", 1)[0]


def _in_any(region: str, areas: list[str]) -> bool:
    return any(within(region, area) for area in areas)


def unbuildable_route(name: str, dep: CloudDeployment, spec: CloudModelSpec,
                      residency: list[str]) -> str | None:
    """Why the stack could not call deployment `name`'s Bedrock model from its own region
    and keep the data where it may go, when that region is an AWS Region (eu-central-1):
    what `simulate` can tell before `llmplan stack` refuses (None: a route exists, the
    provider is not Bedrock, or the region is an area and the Region is chosen later)."""
    if spec.provider != "bedrock" or dep.region.count("-") < 2:
        return None
    try:
        route_for(name, dep, spec, dep.region, residency)
    except RouteError as error:
        return str(error)
    return None


def bedrock_route(plan: Plan, aws_region: str) -> BedrockRoute:
    """The route of the plan's Bedrock model called from `aws_region` (see the module doc).

    Raises RouteError when `aws_region` is unset or contradicts the deployment's region or
    the scenario's data residency, or when no route from it keeps to them."""
    cloud, spec = plan.cloud, plan.cloud_model
    if cloud is None or spec is None or spec.provider != "bedrock":
        raise ValueError("the plan calls no Bedrock model")
    name, dep = cloud
    return route_for(name, dep, spec, aws_region, plan.data_residency)


def route_for(name: str, dep: CloudDeployment, spec: CloudModelSpec, aws_region: str,
              residency: list[str]) -> BedrockRoute:
    """`bedrock_route` for deployment `name` of the scenario (`dep`, its model `spec`),
    called from `aws_region`, with the scenario's data `residency`."""
    who = f"deployment '{name}' ({dep.model}, region {dep.region})"
    example = dep.region if dep.region.count("-") >= 2 else f"a Region in {dep.region}"
    if not aws_region:
        raise RouteError(f"{who} calls AWS Bedrock: set the Region it calls from "
                         f"(--aws-region, or pulumi config set awsRegion), {example}",
                         setting=True)
    if not within(aws_region, dep.region):
        raise RouteError(
            f"{who} was simulated processing its data in {dep.region}, and the stack would "
            f"call Bedrock from {aws_region} (awsRegion, --aws-region), outside it: set "
            f"--aws-region to {example}, or set the deployment's region to where it is to run "
            f"and simulate again", setting=True)
    if residency and not _in_any(aws_region, residency):
        raise RouteError(
            f"{who}: Bedrock receives every call in the Region it is made to, and "
            f"{aws_region} (awsRegion, --aws-region) is outside the scenario's data_residency "
            f"({', '.join(residency)}): set --aws-region to a Region in it", setting=True)
    candidates = _candidates(spec, aws_region)
    fitting = [c for c in candidates if _keeps_to(c, residency)]
    if not fitting:
        raise RouteError(_nothing_fits(who, dep.model, spec, aws_region, residency=residency,
                                       candidates=candidates))
    home = geography(dep.region)
    return min(fitting, key=lambda c: _rank(c, spec, home))


def _candidates(spec: CloudModelSpec, source: str) -> list[BedrockRoute]:
    """The routes of `spec` callable from `source`, the catalog's own geography first."""
    routing = spec.bedrock_routing
    if routing is None:      # nothing known beyond the catalog's id: in-Region, if unprefixed
        if bedrock_profile_prefix(spec.model_id) is None:
            return [BedrockRoute(spec.model_id, "in_region", source, spec.model_id, (source,))]
        return []
    found = routing.foundation_model
    routes = []
    if source in routing.in_region:
        routes.append(BedrockRoute(found, "in_region", source, found, (source,)))
    own = bedrock_profile_prefix(spec.model_id)
    for geo in sorted(routing.profiles, key=lambda g: g != own):
        if source in (table := routing.profiles[geo]):
            routes.append(BedrockRoute(routing.model_id(geo), "geographic", source, found,
                                       tuple(table[source])))
    if source in routing.global_sources:
        routes.append(BedrockRoute(routing.model_id(BEDROCK_GLOBAL), "global", source, found, ()))
    return routes


def _keeps_to(route: BedrockRoute, residency: list[str]) -> bool:
    if not residency:
        return True
    return route.kind != "global" and all(_in_any(r, residency) for r in route.destinations)


def _rank(route: BedrockRoute, spec: CloudModelSpec, home: str) -> int:
    if route.kind == "in_region":
        return _IN_REGION
    if route.kind == "global":
        return _GLOBAL
    if all(within(r, home) for r in route.destinations):
        return _IN_GEOGRAPHY
    return _CATALOG_ID if route.model_id == spec.model_id else _OTHER_GEOGRAPHY


def _nothing_fits(who: str, model: str, spec: CloudModelSpec, source: str, *,
                  residency: list[str], candidates: list[BedrockRoute]) -> str:
    """Why no route serves the plan from `source`, what the catalog knows, what to do."""
    routing = spec.bedrock_routing
    if routing is None:
        prefix = bedrock_profile_prefix(spec.model_id)
        return (f"{who}: the catalog calls it as {spec.model_id}, a {prefix} inference profile, "
                f"and does not say which Regions that routes to from {source} (its "
                f"bedrock_routing): add bedrock_routing to catalog.cloud_models.{model} in the "
                f"scenario, from AWS's 'Supported Regions and models for inference profiles'")
    allowed = f"the scenario's data_residency ({', '.join(residency)})"
    found = routing.foundation_model
    leaves = []
    for route in candidates:
        if route.kind == "global":
            leaves.append(f"the global profile {route.model_id} may process it in any "
                          f"commercial Region")
        else:
            outside = [r for r in route.destinations if not _in_any(r, residency)]
            leaves.append(f"the {route.model_id.split('.', 1)[0]} profile {route.model_id} "
                          f"may process it in {', '.join(outside)} too")
    elsewhere = [f"in-Region in {', '.join(routing.in_region)}"] if routing.in_region else []
    elsewhere += [f"through the {geo} profile from {', '.join(table)}"
                  for geo, table in routing.profiles.items() if source not in table]
    if routing.global_sources and source not in routing.global_sources:
        elsewhere.append(f"through the global profile from "
                         f"{len(routing.global_sources)} other Regions")
    if leaves:
        said = f"{who}: every Bedrock route of {found} from {source} leaves {allowed}: " \
               + "; ".join(leaves)
        if elsewhere:
            said += f" (the catalog knows it {'; '.join(elsewhere)} too)"
    else:
        said = f"{who}: the catalog knows no Bedrock route of {found} callable from {source}"
        if elsewhere:
            said += f", only {'; '.join(elsewhere)}"
    fixes = []
    if leaves:
        fixes.append("allow those Regions in constraints.data_residency (an area such as "
                     "eu covers every eu-* Region)")
    sources = {*routing.in_region, *(r for table in routing.profiles.values() for r in table),
               *([] if residency else routing.global_sources)} - {source}
    if any(_in_any(r, residency) for r in sources) if residency else sources:
        fixes.append("run the deployment where a route is known (its region, and "
                     "--aws-region)")
    fixes.append(f"choose a model whose route from {source} stays in it" if residency
                 else f"choose a model Bedrock serves from {source}")
    return f"{said}. To provision it, {', or '.join(fixes)}; then simulate again"


def route_notes(plan: Plan, route: BedrockRoute) -> list[str]:
    """What the chosen route does that the plan does not show: data processed beyond the
    deployment's region, another id than the one priced, routes the catalog estimates."""
    cloud, spec = plan.cloud, plan.cloud_model
    assert cloud is not None and spec is not None
    name, dep = cloud
    notes = []
    if route.kind == "global":
        notes.append(f"deployment '{name}' calls Bedrock through {route.describe()}: AWS may "
                     f"process its data outside its region {dep.region}; set "
                     f"constraints.data_residency to keep it in a geography")
    elif outside := [r for r in route.destinations if not within(r, dep.region)]:
        notes.append(f"deployment '{name}' calls Bedrock from {route.source_region} through "
                     f"{route.describe()}: AWS may process its data in {', '.join(outside)} "
                     f"too, outside its region {dep.region}")
    priced = bedrock_profile_prefix(spec.model_id)
    priced_kind = "in_region" if priced is None else \
        "global" if priced == BEDROCK_GLOBAL else "geographic"
    if route.kind != priced_kind:      # AWS prices each kind apart; geographies alike
        notes.append(f"the plan priced {dep.model} at the catalog's prices of {spec.model_id}, "
                     f"and the gateway calls {route.model_id}, which AWS may price otherwise "
                     f"(a geographic profile of a recent Claude model costs 10% more than its "
                     f"global one): to plan with its price, set it in the scenario's catalog "
                     f"and simulate again")
    source = spec.sources.get("bedrock_routing", "")
    if spec.bedrock_routing is None:
        notes.append(f"the catalog does not say where Bedrock serves {route.model_id}: check "
                     f"that {route.source_region} offers it on demand")
    elif source.startswith("ESTIMATE"):
        notes.append(f"the catalog's Bedrock routes of {dep.model} are an ESTIMATE: check "
                     f"where {route.model_id} goes from {route.source_region} (aws bedrock "
                     f"get-inference-profile --inference-profile-identifier {route.model_id}) "
                     f"before relying on its IAM policy and data residency")
    return notes
