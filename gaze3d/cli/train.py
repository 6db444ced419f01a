"""``gaze3d train``: train the gaze-guided interactive segmentation network on simulated gaze."""
from __future__ import annotations

from gaze3d.errors import InputError

from ._args import output_file, train_arguments


def register(subparsers):
    p = subparsers.add_parser(
        "train", help="train the gaze-guided segmentation network on simulated gaze",
        description="Train the interactive (class-agnostic) gaze-guided sparse-conv network on the "
                    "training regions of the labelled tiles (west halves minus validation boxes), with annotator gaze simulated from the "
                    "ground-truth objects (no recordings needed). Writes a safetensors checkpoint.")
    p.add_argument("-o", "--output", required=True, help="checkpoint path (.safetensors)")
    p.add_argument("--tiles", default="ign,autzen", help="comma-separated tiles (ign, autzen)")
    p.add_argument("--data", default=None, help="data root (default: shared/data beside the repo "
                                                "or $GAZE3D_DATA)")
    p.add_argument("--variant", default="unet14", help="backbone variant (unet14, unet18, unet34)")
    p.add_argument("--base-channels", type=int, default=16,
                   help="network width: channels of the stem; encoder stage i has base * 2**(i+1), capped (16)")
    p.add_argument("--guidance", choices=("gate", "mha"), default="gate",
                   help="gaze-guided head blocks: gaze-gated fusion, or multi-head attention "
                        "with the gaze as a prior on its logits")
    p.add_argument("--steps", type=int, default=1000, help="optimiser steps (1000)")
    p.add_argument("--batch-size", type=int, default=4, help="training examples (scene crops) per step (4)")
    p.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (3e-3)")
    p.add_argument("--seed", type=int, default=0, help="seed of crops, simulated gaze and initial weights (0)")
    p.add_argument("--time-limit", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--half", action="store_true", help="store weights as float16")
    p.add_argument("--gaze-engine", choices=("attention", "internal"), default="attention",
                   help="attention deposition of the gaze simulator: gaze3d.attention's engine, "
                        "or the simulator's vectorised stand-in")
    p.add_argument("--val-repeats", type=int, default=2,
                   help="after training, run the interactive protocol this many times per object of "
                        "the validation split (0: skip); the score is printed and stored in the "
                        "checkpoint's metadata, to choose between runs without touching the test split")
    p.add_argument("--val-fixations", type=int, default=10, help="fixations per validation object")
    # issue 12: breadth and training as interaction (docs/models.md, "Training for unseen scans")
    p.add_argument("--procedural", type=float, default=0.0,
                   help="fraction of examples from procedural scenes generated on the fly "
                        "(1 with --tiles none: no real scan seen in training)")
    p.add_argument("--error-rounds", type=int, default=0,
                   help="AGILE3D iterative training: up to this many corrective fixations on the "
                        "model's largest error, without gradient, before each step")
    p.add_argument("--neighbour-negatives", type=float, default=0.0,
                   help="probability of negative fixations on the nearest other objects")
    p.add_argument("--strong-augment", action="store_true",
                   help="scale, height scale, density, colour and intensity drop augmentation")
    p.add_argument("--ground", choices=("local-min", "dtm"), default="local-min",
                   help="ground model of the height feature (stored in the checkpoint)")
    p.add_argument("--val-scenes", type=int, default=0,
                   help="procedural validation scenes (fixed seed, never trained on)")
    p.add_argument("--prior", choices=("none", "graph"), default="none",
                   help="graph: the gaze-seeded random walker's potential is a third input channel "
                        "and the network learns a correction of its logit (untrained = the walker)")
    p.add_argument("--surface", type=float, default=0.0,
                   help="fraction of the generated scenes made from label-volume surfaces (organs, "
                        "frog tissues, channels) instead of the procedural generator")
    p.add_argument("--surface-sources", default="frog,channels",
                   help="label volumes for --surface (frog, channels: inside the pyvista wheel; "
                        "totalsegmentator: shared data)")
    p.add_argument("--init", default=None,
                   help="start from this checkpoint's weights (fine-tuning; a --prior graph model "
                        "may start from one without the prior: it then starts as the walker)")
    p.add_argument("--fixation-weight", type=float, default=0.0,
                   help="BCE weight 1 + this x attention per point: the loss counts more near "
                        "fixations (AGILE3D; 0: off)")
    # issue 14: the gaze-prompted volume model (docs/volumes.md)
    p.add_argument("--volumes", default=None,
                   help="train the VOLUME model instead, on SynthSeg images of these label volumes "
                        "(comma-separated: frog, channels, organs = procedural torsos, mni, totalseg); "
                        "see docs/volumes.md")
    p.add_argument("--val-volume", default="mni",
                   help="volume model: label volume to validate on (never trained on; none: skip)")
    p.add_argument("--crop", type=int, default=32, help="volume model: crop edge in voxels")
    p.add_argument("--voxel-mm", type=float, default=4.0, help="volume model: crop voxel edge (mm)")
    p.add_argument("--volume-prior", choices=("crop", "native"), default="native",
                   help="volume model: the walker it refines: the viewer's ROI walker (walker_roi) on the "
                        "volume's own grid (native, the shipped model's), or the full random walker on the "
                        "crop (the first design); docs/volumes.md")
    p.add_argument("--members", type=int, default=1,
                   help="volume model: train this many models (seeds --seed, --seed+1, ...) and ship them "
                        "as one ensemble checkpoint whose mask logits are averaged (1: a single model)")
    p.add_argument("--jobs", type=int, default=None,
                   help="volume model with --members: member runs side by side (default: members, at most "
                        "the CPU count), each with --threads torch threads")
    p.set_defaults(func=run)
    return p


def run(args):
    output_file(args.output)         # before hours of training, not at the save
    if args.threads is not None and args.threads < 1:
        raise InputError(f"--threads: expected >= 1 torch threads, got {args.threads}")
    if args.val_scenes < 0:
        raise InputError(f"--val-scenes: expected >= 0 procedural validation scenes, got {args.val_scenes}")
    if args.val_repeats < 0 or args.val_fixations < 1:
        raise InputError("--val-repeats: expected >= 0 and --val-fixations >= 1, got "
                         f"{args.val_repeats} and {args.val_fixations}")
    if args.volumes:
        from gaze3d.models.volume_train import run_cli

        return run_cli(args)
    if args.members != 1 or args.jobs is not None:
        raise InputError("--members/--jobs: only for the volume model (--volumes); got "
                         f"--members {args.members}" + (f" --jobs {args.jobs}" if args.jobs is not None else ""))
    import torch

    from gaze3d.models.checkpoint import save_checkpoint, weights_digest
    from gaze3d.models.data import TILES, load_tile
    from gaze3d.models.networks.segnet import GazeSegNet
    from gaze3d.models.train import (InteractiveSampler, TrainConfig, default_interactive_config,
                                     train_interactive)

    names = [t for t in args.tiles.split(",") if t and t != "none"]
    bad = [t for t in names if t not in TILES]
    if bad or not (names or args.procedural > 0):
        raise InputError(f"--tiles: expected names from {sorted(TILES)} (or none with --procedural), "
                         f"got {args.tiles!r}")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    try:
        cfg = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                          time_limit_s=args.time_limit, error_rounds=args.error_rounds,
                          fixation_weight=args.fixation_weight).validate()
        prior = "" if args.prior == "none" else args.prior
        net_cfg = default_interactive_config(args.variant, args.base_channels, guidance=args.guidance,
                                             prior=prior)
        model = GazeSegNet(net_cfg)
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    init_tiles = []
    if args.init:
        from gaze3d.models.checkpoint import init_from_checkpoint

        init_meta = init_from_checkpoint(model, args.init)
        # what the starting weights saw counts as seen (leave-one-dataset-out)
        init_tiles = [t for t in init_meta.get("tiles", ["ign", "autzen"]) if t not in names]
    tiles = [load_tile(n, args.data, ground=args.ground) for n in names]
    try:
        sampler = InteractiveSampler(tiles, "train", seed=args.seed, engine=args.gaze_engine,
                                     procedural=args.procedural, neighbour_negatives=args.neighbour_negatives,
                                     strong_augment=args.strong_augment, ground=args.ground,
                                     prior=prior, surface=args.surface,
                                     surface_sources=[x for x in args.surface_sources.split(",") if x])
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    losses = train_interactive(model, sampler, cfg)
    meta = {"tiles": names + init_tiles, "steps_run": len(losses), "final_mask_loss": sum(losses[-20:]) / len(losses[-20:]),
            "features": args.ground, "procedural_scenes_made": sampler.scenes_made,
            "command": "gaze3d train " + " ".join(train_arguments(args))}
    path = save_checkpoint(model, args.output, meta, half=args.half)
    print(f"saved {path} ({path.stat().st_size / 1e6:.2f} MB), final mask loss {meta['final_mask_loss']:.4f}, "
          f"weights sha256 {weights_digest(path)}")
    if args.val_scenes > 0:
        from gaze3d.models.procedural import validation_scenes

        tiles = tiles + validation_scenes(args.val_scenes, ground=args.ground)
    if args.val_repeats > 0 and tiles:
        meta.update(validate(path, tiles, args.val_repeats, args.val_fixations))
        save_checkpoint(model, path, meta, half=args.half)   # same weights, header + validation
        print(f"validation score (mean IoU over {args.val_fixations} fixations) "
              f"{meta['val_score']:.4f}, stored in {path}")


def validate(path, tiles, repeats: int, fixations: int) -> dict:
    """Interactive protocol on the validation objects with the checkpoint as saved."""
    from gaze3d.models.interactive import InteractiveSegmenter
    from gaze3d.models.interactive_eval import evaluate_split, summarise, validation_score

    print(f"validation: {repeats} run(s) per object of the val split, {fixations} fixations")
    results = evaluate_split(InteractiveSegmenter(path), tiles, "val", fixations, repeats)
    row = summarise(results, cap=fixations)[0]
    print("  " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                           for k, v in row.items()))
    return {"val_score": validation_score(results), "val_summary": row,
            "val_objects": sorted({f"{r.tile}:{r.object_id}" for r in results})}
