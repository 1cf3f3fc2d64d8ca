"""`llmplan stack`, `import-cluster` and `verify`: from a simulated deployment to a Pulumi
stack, from a cluster's GPU nodes to deployments, and a rolled-out fleet checked."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from llmplan.cli.loading import load_or_fail
from llmplan.cli.options import (
    check_out_folder,
    check_stack_name,
    not_an_input,
    option_problem,
    writing,
)
from llmplan.cli.terminal import console, fail, out
from llmplan.errors import InputError, did_you_mean


def stack(
    scenario: Annotated[Path, typer.Argument(help="Scenario file.")],
    stack_name: Annotated[str, typer.Option("--stack", help="Pulumi stack name.")] = "dev",
    deployment: Annotated[str | None, typer.Option(
        help="Deployment to provision (default: the recommended one).")] = None,
    namespace: Annotated[str | None, typer.Option(help="Kubernetes namespace.")] = None,
    cluster_mode: Annotated[str | None, typer.Option(
        help="kubeconfig (an existing cluster) or eks (create one).")] = None,
    aws_region: Annotated[str | None, typer.Option(help="AWS region of AWS resources.")] = None,
    eks_gpu_instance_type: Annotated[str | None, typer.Option(
        help="With --cluster-mode eks: the GPU nodes' EC2 instance type (default: the "
             "smallest llmplan knows carrying one replica).")] = None,
    eks_gpus_per_node: Annotated[int | None, typer.Option(
        help="GPUs on --eks-gpu-instance-type.")] = None,
    vllm_image: Annotated[str | None, typer.Option(
        help="The fleet's vLLM image, pinned (default: vLLM's own image of the simulated "
             "release); on AMD GPUs it sets vllmRocmImage.")] = None,
    out_dir: Annotated[Path | None, typer.Option(
        "--out", help="Folder of Pulumi.yaml (default: the current folder if it is llmplan's "
                      "Pulumi project, else the project llmplan came with).")] = None,
) -> None:
    """Write Pulumi.<stack>.yaml so `pulumi up` deploys the deployment as simulated.

    The stack file goes next to the project's Pulumi.yaml, where the pulumi commands it
    prints must run."""
    from llmplan.pipeline import evaluate
    from llmplan.provision.stack import is_project_dir, project_dir, stack_folder, write_stack

    check_stack_name(stack_name)
    if out_dir is not None:
        check_out_folder(out_dir)
    if cluster_mode not in (None, "kubeconfig", "eks"):
        fail(InputError([option_problem("--cluster-mode", f"got '{cluster_mode}'; expected "
                                                            "kubeconfig or eks")]))
    if eks_gpus_per_node is not None and not 1 <= eks_gpus_per_node <= 64:
        fail(InputError([option_problem("--eks-gpus-per-node", f"got {eks_gpus_per_node}; "
                                          "expected the GPUs of one node, 1 to 64")]))
    if eks_gpus_per_node is not None and eks_gpu_instance_type is None:
        fail(InputError([option_problem("--eks-gpus-per-node", "it counts the GPUs of "
                                          "--eks-gpu-instance-type; expected that too")]))
    loaded = load_or_fail(scenario)
    result = evaluate(loaded)
    settings = {"namespace": namespace, "cluster_mode": cluster_mode, "aws_region": aws_region,
                "eks_gpu_instance_type": eks_gpu_instance_type,
                "eks_gpus_per_node": eks_gpus_per_node, "serving_image": vllm_image}
    try:
        folder = stack_folder(out_dir)
        with writing(folder):
            written = write_stack(folder / f"Pulumi.{stack_name}.yaml", loaded, result,
                                  deployment, settings)
    except InputError as error:
        fail(error)
    plan, candidate = written.config.plan, written.candidate
    verb = "wrote" if written.changed else "unchanged:"
    console.print(f"{verb} {written.path}: deployment '{plan.deployment}' ({plan.chosen.kind}), "
                  f"planned at ${plan.simulated.monthly_usd:,.0f} per month", highlight=False)
    if not candidate.feasible:
        console.print(f"[bold yellow]warning:[/] '{plan.deployment}' was not feasible: "
                      f"{escape('; '.join(candidate.infeasible_because))}", highlight=False)
    for note in written.notes:
        console.print(f"[bold yellow]note:[/] {escape(note)}", highlight=False)
    project = folder if is_project_dir(folder) else project_dir()
    steps = []
    if project != folder:
        where = f"the project folder {project}" if project is not None else \
            "the folder of llmplan's Pulumi.yaml and infra/"
        console.print(f"[bold yellow]warning:[/] {escape(str(folder.resolve()))} has no "
                      f"Pulumi.yaml of this project; the pulumi commands run in "
                      f"{escape(where)}, with "
                      f"{written.path.name} beside Pulumi.yaml", highlight=False)
        if project is not None:
            steps.append(f"cp {written.path} {project}/")
    if project is not None and project.resolve() != Path.cwd().resolve():
        steps.append(f"cd {project}")
    steps.append(f"pulumi stack select {stack_name} --create")
    steps += [f"pulumi config set --secret {s.key} <value>" + ("    # already set"
              if s.already_set else f"    # {s.why}") for s in written.secrets]
    steps += ["pulumi preview --policy-pack infra/policy", "pulumi up"]
    # commands to copy: the terminal wraps them (soft_wrap), rich never cuts one in two
    out.print("next:\n" + "\n".join(f"  {escape(step)}" for step in steps), highlight=False,
              soft_wrap=True)



def import_cluster(
    kubeconfig: Annotated[Path | None, typer.Option(
        help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config).")] = None,
    context: Annotated[str | None, typer.Option(help="kubeconfig context.")] = None,
    model: Annotated[str, typer.Option(
        help="Catalog model the proposed deployments serve.")] = "Llama-3.1-8B",
    tp: Annotated[int, typer.Option(min=1, help="GPUs per replica.")] = 1,
    out_path: Annotated[Path, typer.Option("--out", help="Inventory file to write.")] = Path(
        "inventory.yaml"),
) -> None:
    """Read an existing cluster's GPU nodes into deployments a scenario can use."""
    from llmplan.catalog import builtin_catalog
    from llmplan.provision.gpu_nodes import sliced
    from llmplan.provision.inventory import host_arch_advice, write_inventory
    from llmplan.provision.inventory import import_cluster as read_cluster

    if kubeconfig is not None:
        not_an_input(out_path, [kubeconfig], "inventory.yaml")
    models = builtin_catalog().models
    if model not in models:
        fail(InputError([option_problem("--model", f"unknown model '{model}'"
                                                     f"{did_you_mean(model, models)}; expected "
                                                     f"one of: {', '.join(sorted(models))}")]))
    try:
        inventory = read_cluster(kubeconfig, context, model, tp)
    except InputError as error:
        fail(error)
    for pool in inventory.pools:
        out.print(f"{pool.gpu} ({pool.product}): {len(pool.nodes)} nodes, "
                  f"{pool.allocatable_gpus} GPUs allocatable, {pool.usable_nodes} nodes ready "
                  "and schedulable", highlight=False)
    for product, gpus in inventory.unknown_products.items():
        if sliced(product):
            out.print(f"{product}: {gpus} GPU slices (MIG or time-shared), not whole GPUs: "
                      "left out (a model's replica needs whole cards)", highlight=False)
            continue
        out.print(f"{product}: {gpus} GPUs, not in the catalog (add it under the scenario's "
                  "`catalog: gpus:`)", highlight=False)
    for gpu, most in inventory.too_small.items():
        out.print(f"{gpu}: no ready node has {tp} of them (--tp); the most on one node is "
                  f"{most}: no deployment", highlight=False)
    for gpu, why in inventory.cannot_serve.items():
        out.print(f"{gpu}: {model} with --tp {tp} cannot be served there ({escape(why)}): no "
                  f"deployment", highlight=False)
    for node, why in inventory.wrong_arch.items():
        out.print(f"{node}: left out: {escape(why)}", highlight=False)
    for product, arches in inventory.unknown_product_arch.items():
        if (advice := host_arch_advice(arches)) is not None:   # amd64 alone needs no word
            out.print(f"{product}: {advice}", highlight=False)
    for name, dep in inventory.deployments.items():
        out.print(f"deployment {name}: {dep.replicas} x {dep.gpus_per_replica} {dep.gpu} serving "
                  f"{dep.model}",
                  highlight=False)
    with writing(out_path):
        console.print(f"wrote {write_inventory(inventory, out_path)}")


def verify(
    stack_name: Annotated[str, typer.Option("--stack", help="Pulumi stack name.")],
    stack_dir: Annotated[Path, typer.Option(
        "--dir", help="Folder of Pulumi.<stack>.yaml.")] = Path("."),
    kubeconfig: Annotated[Path | None, typer.Option(
        help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config).")] = None,
    context: Annotated[str | None, typer.Option(
        help="kubeconfig context (default: the stack's kubeContext, else current).")] = None,
) -> None:
    """After `pulumi up`: the fleet rolled out with its GPUs and the gateway answers."""
    from llmplan.provision.verify import verify_stack

    check_stack_name(stack_name)
    try:
        report = verify_stack(stack_dir / f"Pulumi.{stack_name}.yaml", kubeconfig, context)
    except InputError as error:
        fail(error)
    out.print(f"stack {report.stack} on {report.server}:", highlight=False)
    for check in report.checks:
        mark = "[green]ok[/]  " if check.ok else "[bold red]FAIL[/]"
        out.print(f"  {mark} {escape(check.name)}: {escape(check.detail)}", highlight=False)
    if not report.ok:
        raise typer.Exit(code=1)
