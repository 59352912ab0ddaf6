"""The thin shells around the engine: the steps that Snakemake rules and users call, and the Dask runner.

:mod:`~pipeline.workflow.commands` holds one module per step of the command line (:mod:`pipeline.cli`);
:mod:`~pipeline.workflow.runner` spreads a shard's batches over Dask workers and gathers them. Nothing below this
package imports ``dask.distributed`` or ``snakemake``.
"""
