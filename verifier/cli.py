"""``python -m verifier``: a thin command line over the library.

    python -m verifier run --n-layer 4 --d-model 128 --steps 1000
    python -m verifier run --params 1e6 --tokens 2e7 --corpus ./text/ --json

This module defines ``run``; ``check`` and ``calibrate`` come from verifier.check.cli. Every command takes
``--db PATH`` (else ``$SCALEPLAN_DB``, else ./scaleplan.db). Bad input prints one line on stderr and exits
with status 2; a run that started but could not finish (the loss diverged) exits with 1.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys

import msgspec

from fits import cliutil
from verifier import runs
from verifier.check import cli as check_cli
from verifier.runs import ConfigError, RunConfig


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    shape = p.add_argument_group("model shape (either --n-layer/--d-model or --params)")
    shape.add_argument("--n-layer", type=int, help="Transformer blocks")
    shape.add_argument("--d-model", type=int, help="residual width")
    shape.add_argument("--n-head", type=int, help="default: 64-wide heads")
    shape.add_argument("--params", type=cliutil.number, metavar="N",
                       help="non-embedding parameter target; the shape comes from planner.shape")
    length = p.add_argument_group("length (one of)")
    length.add_argument("--steps", type=cliutil.whole, help="optimizer steps")
    length.add_argument("--tokens", type=cliutil.number, help="training tokens, rounded up to whole steps")
    opt = p.add_argument_group("optimisation")
    opt.add_argument("--batch-size", type=int, default=16, help="sequences per step, all ranks (16)")
    opt.add_argument("--seq-len", type=int, default=256, help="tokens per sequence (256)")
    opt.add_argument("--lr", type=float, help="peak learning rate (default: Kaplan eq. D.1)")
    opt.add_argument("--warmup", type=int, dest="warmup_steps", help="warm-up steps (5%% of steps)")
    opt.add_argument("--schedule", choices=("cosine", "linear", "constant"), default="cosine",
                     help="learning-rate decay after warm-up (cosine)")
    opt.add_argument("--min-lr-ratio", type=float, default=0.1, help="final LR as a fraction of the peak (0.1)")
    opt.add_argument("--weight-decay", type=float, default=0.1, help="AdamW weight decay (0.1)")
    opt.add_argument("--grad-clip", type=float, default=1.0, help="gradient-norm clip (1.0)")
    opt.add_argument("--dropout", type=float, default=0.0, help="dropout probability (0)")
    opt.add_argument("--untied", action="store_true", help="give the output head its own matrix")
    opt.add_argument("--bias", action="store_true", help="biases in linear layers and LayerNorms (GPT-2)")
    opt.add_argument("--micro-batch", type=int, help="sequences per forward pass (gradient accumulation)")
    opt.add_argument("--seed", type=int, default=0, help="seed for initialisation and data order (0)")
    data = p.add_argument_group("data")
    data.add_argument("--corpus", help="text file, directory, or .bin/.npy tokens (default: Python stdlib)")
    data.add_argument("--tokenizer", choices=("bytes", "bpe"), default="bytes",
                      help="bytes (256 tokens) or a BPE trained on the corpus (bytes)")
    data.add_argument("--vocab-size", type=int, help="BPE vocabulary (4096)")
    data.add_argument("--scope", help="record the run under this scope instead of the corpus fingerprint")
    ev = p.add_argument_group("evaluation and checkpoints")
    ev.add_argument("--eval-every", type=int, default=100, help="steps between validations (100)")
    ev.add_argument("--eval-sequences", type=int, default=64, help="validation windows (64)")
    ev.add_argument("--checkpoint-every", type=int, default=2, help="evaluations between checkpoints (2)")
    rt = p.add_argument_group("execution")
    rt.add_argument("--device", default="auto", help="auto, cpu or cuda (auto)")
    rt.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                    help="bf16: autocast with fp32 master weights and optimizer; auto: bf16 on CUDA and on CPUs "
                         "with AMX or AVX512-BF16, else fp32 (recorded with the run, part of its identity)")
    rt.add_argument("--attention", choices=("auto", "sdpa", "xformers"), default="auto",
                    help="attention kernel (auto: the fastest available)")
    rt.add_argument("--compile", action="store_true", help="torch.compile the model")
    rt.add_argument("--nproc", type=int, default=1,
                    help="processes on this host: >1 relaunches under torchrun with DDP")
    cliutil.add_db_option(rt)
    rt.add_argument("--run-id", type=int,
                    help="train (or continue) this existing run; without shape options, as it was configured")
    rt.add_argument("--no-resume", action="store_true",
                    help="always start a new run, even if an unfinished one has this config")
    rt.add_argument("--keep-checkpoint", action="store_true", help="keep the checkpoint after the run completes")
    rt.add_argument("--json", action="store_true", help="print the result as JSON")
    rt.add_argument("--quiet", action="store_true", help="no progress bar or log lines")


def config_from_args(args: argparse.Namespace) -> RunConfig:
    from verifier import device as device_mod
    from verifier.train import make_config

    precision = device_mod.resolve_precision(args.precision, device_mod.resolve_device(args.device))
    return make_config(
        n_layer=args.n_layer, d_model=args.d_model, n_head=args.n_head, params=args.params,
        steps=args.steps, tokens=args.tokens, batch_size=args.batch_size, seq_len=args.seq_len,
        lr=args.lr, warmup_steps=args.warmup_steps, corpus=args.corpus, schedule=args.schedule,
        min_lr_ratio=args.min_lr_ratio, weight_decay=args.weight_decay, grad_clip=args.grad_clip,
        dropout=args.dropout, tie_embeddings=not args.untied, bias=args.bias, micro_batch=args.micro_batch,
        seed=args.seed, precision=precision,
        tokenizer=args.tokenizer, vocab_size=args.vocab_size, scope=args.scope, eval_every=args.eval_every,
        eval_sequences=args.eval_sequences, checkpoint_every=args.checkpoint_every)


def _launch_torchrun(nproc: int, argv: list[str]) -> int:
    """Re-run this command under torchrun (one process per device, or per core group on CPU)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "verifier.ddp", *argv]
    return subprocess.call(cmd)


def cmd_run(args: argparse.Namespace) -> int:
    import torch.distributed as dist

    from fits.store import open_db
    from verifier.train import train

    distributed = dist.is_available() and dist.is_initialized()
    main = not distributed or dist.get_rank() == 0
    shape_given = any(v is not None for v in (args.n_layer, args.d_model, args.params))
    if args.run_id is not None and not shape_given:  # `run --run-id N` alone: train it as configured
        reader = open_db(args.db)
        try:
            config = runs.get_run(reader, args.run_id).run_config
        finally:
            reader.conn.close()
        if config is None:
            raise ConfigError(f"run {args.run_id} has no stored config to train from", field="run_id")
        if args.precision not in ("auto", config.precision):  # a run keeps the precision it started in
            raise ConfigError(f"run {args.run_id} trains in {config.precision}, not {args.precision}",
                              field="precision")
    else:
        config = config_from_args(args)
    if args.nproc > 1 and not distributed:  # bad input was reported above, once, before starting processes
        if config.batch_size % args.nproc:
            raise ConfigError(f"{config.batch_size} sequences do not split evenly over "
                              f"{args.nproc} processes", field="batch_size")
        return _launch_torchrun(args.nproc, _strip_nproc(args.argv))
    if not args.quiet and main:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    db = open_db(args.db) if main else None
    try:
        result = train(config, db=db, run_id=args.run_id, device=args.device, progress=not args.quiet,
                       resume=not args.no_resume, attention=args.attention, compile=args.compile,
                       keep_checkpoint=args.keep_checkpoint)
    finally:
        if db is not None:
            db.conn.close()
    if not main:
        return 0
    if args.json:
        print(msgspec.json.encode(result).decode())
    else:
        print(f"run {result.run.id} complete: final train loss {result.final_train_loss:.4f}, "
              f"val loss {result.final_val_loss:.4f} (best {result.best_val_loss:.4f} at step "
              f"{result.best_val_step}); {result.tokens_per_second:,.0f} tokens/s, "
              f"{result.flops_per_second / 1e9:.1f} GFLOP/s in {config.precision}; scope {result.run.scope}")
    return 0


def _strip_nproc(argv: list[str]) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            out.append(a)
    return out


def _is_rank_zero() -> bool:
    return os.environ.get("RANK", "0") == "0"


COMMANDS: dict[str, cliutil.Command] = {
    "run": cmd_run,
    "check": check_cli.cmd_check,
    "calibrate": check_cli.cmd_calibrate,
}


def build_parser() -> argparse.ArgumentParser:
    parser = cliutil.Parser(prog="python -m verifier",
                            description="Train small GPT runs and check scaling-law predictions.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="train one run and store its curve",
                         description="Train one GPT run; prints its id and final losses.")
    add_run_arguments(run)
    check_cli.add_parsers(sub)
    cliutil.bind_commands(sub, COMMANDS)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = argv[1:]  # the subcommand's own arguments, for relaunching under torchrun
    try:
        # Bad input (configuration, corpus, device, memory, run id; plain ValueErrors from torch or msgspec
        # too) is one line and 2; under torchrun every rank fails alike, so only rank 0 prints it.
        return cliutil.dispatch(args, prefix="error: ", bad_input=(ValueError,), quiet=not _is_rank_zero())
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130

