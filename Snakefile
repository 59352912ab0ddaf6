# Monte Carlo survey of the loss landscape of shallow ReLU-like networks.
#
#   snakemake --profile profiles/default --config survey=<name>      (default survey: "default")
#
# Path grammar ({survey} is the YAML file stem of surveys/{survey}.yaml; {shard} is zero-padded):
#   results/{survey}/survey.resolved.yaml        validated survey with every default (input of everything after)
#   results/{survey}/plan.csv                    one row per run: settings, seeds, seed keys, shard
#   results/{survey}/shards/shard-{shard}.zarr   one shard's runs (written aside, then renamed)
#   results/{survey}/survey.zarr                 the survey store users open with xarray
#   results/{survey}/report/index.html           the statistical report (and index.md, figures, CSV tables)
#   logs/{rule}/{survey}/...                     one log per job
#   benchmarks-out/{rule}/{survey}/...           one benchmark file per job

import shlex
import sys

from pipeline.survey.plan import make_plan, n_shards
from pipeline.survey import load_survey

# The command line of the environment running Snakemake (also in SLURM jobs, which run the same interpreter),
# whether or not that environment's bin folder is on PATH. Every rule runs in this environment, the project's
# own virtual environment (run.sh creates it), so no rule names a conda environment or container: the lint
# "Specify a conda environment or container for each rule" is the one `bash run.sh check` ignores.
LANDSCAPE = f"{shlex.quote(sys.executable)} -m pipeline.cli"

SURVEY_NAME = config.setdefault("survey", "default")
SURVEY = load_survey(f"surveys/{SURVEY_NAME}.yaml")  # fails here, before any job, on a bad survey
SHARDS = [f"{shard:04d}" for shard in range(n_shards(make_plan(SURVEY)))]
# Given data files are inputs: editing one re-runs the survey (its hash is checked again at collect)
DATA_FILES = sorted({cell["data_file"] for cell in SURVEY.cells() if cell["data_file"] is not None})

wildcard_constraints:
    survey=r"[a-z0-9][a-z0-9_-]*",
    shard=r"\d{4}",


rule all:
    input:
        f"results/{SURVEY.name}/survey.zarr",
        f"results/{SURVEY.name}/report/index.html",


rule resolve:
    input:
        survey="surveys/{survey}.yaml",
        data_files=DATA_FILES,
    output:
        "results/{survey}/survey.resolved.yaml",
    log:
        "logs/resolve/{survey}.log",
    benchmark:
        "benchmarks-out/resolve/{survey}.tsv"
    params:
        landscape=LANDSCAPE,
    shell:
        "{params.landscape} resolve {input.survey} --out {output} > {log} 2>&1"


rule plan:
    input:
        "results/{survey}/survey.resolved.yaml",
    output:
        "results/{survey}/plan.csv",
    log:
        "logs/plan/{survey}.log",
    benchmark:
        "benchmarks-out/plan/{survey}.tsv"
    params:
        landscape=LANDSCAPE,
    shell:
        "{params.landscape} plan {input} --out {output} > {log} 2>&1"


rule simulate:
    input:
        survey="results/{survey}/survey.resolved.yaml",
        plan="results/{survey}/plan.csv",
    output:
        directory("results/{survey}/shards/shard-{shard}.zarr"),
    log:
        "logs/simulate/{survey}/shard-{shard}.log",
    benchmark:
        "benchmarks-out/simulate/{survey}/shard-{shard}.tsv"
    threads: workflow.cores
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        landscape=LANDSCAPE,
    shell:
        "{params.landscape} simulate {input.survey} --shard {wildcards.shard} --threads {threads} --out {output} > {log} 2>&1"


rule collect:
    input:
        survey="results/{survey}/survey.resolved.yaml",
        shards=expand("results/{{survey}}/shards/shard-{shard}.zarr", shard=SHARDS),
    output:
        directory("results/{survey}/survey.zarr"),
    log:
        "logs/collect/{survey}.log",
    benchmark:
        "benchmarks-out/collect/{survey}.tsv"
    params:
        landscape=LANDSCAPE,
    shell:
        "{params.landscape} collect {input.survey} {input.shards} --out {output} > {log} 2>&1"


rule report:
    input:
        "results/{survey}/survey.zarr",
    output:
        "results/{survey}/report/index.html",
    log:
        "logs/report/{survey}.log",
    benchmark:
        "benchmarks-out/report/{survey}.tsv"
    params:
        landscape=LANDSCAPE,
    shell:
        "{params.landscape} report {input} --out results/{wildcards.survey}/report > {log} 2>&1"
