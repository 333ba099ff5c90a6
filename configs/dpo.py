"""DPO (Rafailov et al. 2023, eq. 7) on preference pairs, from a frozen start policy that is also the reference.
cDPO: `--config.loss.label_smoothing=0.1`; hinge (SLiC-style): `--config.loss.loss_type=hinge`; IPO: configs/ipo.py.

    python -m rlaif_jax.main --config=configs/dpo.py:tiny --workdir=/tmp/dpo_tiny       # toy task: SFT, then DPO
    python -m rlaif_jax.main --config=configs/dpo.py:smollm2 --workdir=/tmp/dpo_sent    # SmolLM2, VADER sentiment
    python -m rlaif_jax.main --config=configs/dpo.py:smollm2 --workdir=/tmp/dpo_rm \
        --config.data.label_reward=reward_model:RM_DIR                                   # pairs labelled by an RM
    python -m rlaif_jax.main --config=configs/dpo.py:smollm2 --workdir=/tmp/dpo_file \
        --config.data.source=jsonl --config.data.train_file=prefs.jsonl      # rows {"prompt","chosen","rejected"}

`tiny` fine-tunes a random-init model on noisy toy demonstrations (WORKDIR/sft), samples 4 responses for each of
256 train prompts, pairs the best against the worst by the gold reward (WORKDIR/samples.jsonl) and trains DPO on
them; WORKDIR/eval_start.json and eval_end.json hold the held-out gold reward and KL to the reference (measured:
0.48 -> 0.71 at 1.4 nats/sequence; cDPO ε = 0.1: 0.67 at 0.6; hinge: 0.68 at 0.6; ~1 min on 2 CPU cores).
`smollm2` does the same on the movie-review prompts with VADER as the labeller (the DPO paper's controlled-sentiment
task, §6.1, with VADER in place of its sentiment classifier). Measured: held-out VADER 0.19 -> 0.43 at a KL of
1.76 nats/sequence (16 prompts x 4 samples, every untied pair, 20 steps; 15 min on 2 shared CPU cores).
`paper` holds DPO's App. B values. `llama3_1b` / `llama3_8b` are shape-only (DPO's App. B step on those
architectures: 8 pairs x 2048 tokens, bf16 compute, f32 weights, full remat) for compile-only memory planning:
    python experiments/aot_memory.py --config=configs/dpo.py:llama3_1b --mesh=fsdp=8 --seq_len=2048 --batch_size=8
"""

import ml_collections

from rlaif_jax import config_defaults


def get_config(arg: str = "tiny") -> ml_collections.ConfigDict:
    """arg: 'tiny' (toy task, SFT first), 'smollm2' (sentiment on SmolLM2-135M-Instruct), 'paper' (DPO App. B), or
    the shape-only 'llama3_1b' / 'llama3_8b'."""
    planning = arg in config_defaults.PLANNING_SIZES
    if arg not in ("tiny", "smollm2", "paper") and not planning:
        raise ValueError(f"unknown argument {arg!r}; expected 'tiny', 'smollm2', 'paper', 'llama3_1b' or 'llama3_8b'")
    tiny = arg == "tiny"
    size = "tiny" if tiny else "smollm2"
    config = ml_collections.ConfigDict()
    config.job = "preference"  # pipeline in rlaif_jax/pipelines
    config.seed = 0  # sampling rng = fold_in(key(seed), 1); train-step rng = fold_in(key(seed), step)
    config.model = config_defaults.model(size)
    config.mesh = config_defaults.mesh()
    config.data = ml_collections.ConfigDict(
        dict(
            source="sampled",  # 'sampled' (from the start policy), 'jsonl' (train_file) or 'toy' (toy pairs)
            task="toy" if tiny else "sentiment",  # train prompts to sample and held-out prompts to evaluate on
            train_file="",  # source 'jsonl': pairwise JSONL {"prompt","chosen","rejected"} (ranked for RRHF)
            labels="hard",  # 'hard': each pair oriented by its 'preference' (< 0.5 swaps, 0.5 dropped); 'soft': DPO
            # learns P(chosen preferred) itself (cross-entropy; loss_type 'sigmoid'); ai_labels.jsonl needs one of them
            label_reward="toy" if tiny else "sentiment",  # scores the samples: 'toy', 'sentiment', 'reward_model:DIR'
            num_prompts=0 if tiny else 16,  # train prompts (cycling past the split); 0 = all (toy 256, sentiment 64)
            samples_per_prompt=4,  # K responses per prompt (DPO §6.1: 4 completions per prefix)
            pairing="best_worst" if tiny else "all_pairs",  # 'best_worst', 'all_pairs' (§6.1: 4 -> 6) or 'tournament'
            temperature=1.0,  # sampling temperature of the K responses
            top_k=0,  # sampling top-k (0 = off)
            sample_batch_prompts=64 if tiny else 16,  # prompts per sampler call
            max_prompt_length=16 if tiny else 64,  # prompt bucket of the sampler and the evaluation (tokens)
            max_new_tokens=8 if tiny else 48,  # response length cap (tokens)
            max_length=32 if tiny else 112,  # tokens per training sequence (prompt + response + EOS)
            use_chat_template=not tiny,  # prompts as a chat user turn
            seed=0,  # shuffling seed (batch of step t is a function of seed and t)
            toy_num_pairs=2048,  # source 'toy': number of pairs
            toy_noise=0.5,  # source 'toy': probability that a demonstration letter is wrong
        )
    )
    config.loss = ml_collections.ConfigDict(
        dict(
            method="dpo",  # 'dpo', 'slic', 'rrhf' or 'rso'
            beta=1.0 if tiny else 0.1,  # β: KL strength (App. B: 0.1; the toy byte model leaks mass to non-letters)
            loss_type="sigmoid",  # 'sigmoid' (DPO), 'ipo' (Azar et al. 2023) or 'hinge' (SLiC-style)
            label_smoothing=0.0,  # cDPO ε: assumed probability that a label is flipped; 0 = DPO
        )
    )
    config.eval = ml_collections.ConfigDict(
        dict(
            gold_reward="toy" if tiny else "sentiment",  # judge of the held-out samples
            num_prompts=64 if tiny else 32,  # held-out prompts, one sample each, at start and end
            temperature=1.0,  # evaluation sampling temperature
        )
    )
    config.train = ml_collections.ConfigDict(
        dict(
            num_steps=0 if tiny else 20,  # optimizer steps; 0 = num_epochs over the pairs
            num_epochs=4,  # passes over the pairs when num_steps is 0
            stop_at_step=0,  # stop early at this step (as if preempted); 0 = run to the end
            batch_size=32 if tiny else 8,  # pairs per step (global)
            reference_batch_size=32 if tiny else 16,  # rows per forward pass of the reference log-probs
            accumulation_steps=1,  # micro-batches per step
            log_every=5,  # metrics.jsonl / TensorBoard interval
            max_nonfinite_steps=3,  # stop with an error after more non-finite steps than this
        )
    )
    config.optimizer = config_defaults.optimizer(
        learning_rate=3e-4 if tiny else 1e-5, schedule="constant", warmup_steps=0
    )
    config.checkpoint = config_defaults.checkpoint(every_steps=20)
    config.sft_first = tiny  # run `config.sft` into WORKDIR/sft first and start from its result
    config.sft = config_defaults.load_config_file("sft", size)  # the SFT stage (configs/sft.py)
    config.sft.export_hf = True  # the job loads the SFT result from WORKDIR/sft/hf_model
    if arg == "paper":
        # DPO App. B. The GPT-2-large / GPT-J / Pythia-2.8B SFT policies are not bundled: set config.model.name.
        config.model.name = ""  # set: path of the SFT policy (π_ref = π_SFT, §4)
        config.loss.beta = 0.1  # App. B (0.5 for TL;DR summarization)
        config.data.samples_per_prompt = 4  # §6.1: 4 completions per IMDb prefix
        config.data.pairing = "all_pairs"  # §6.1: 6 preference pairs per prefix
        config.data.num_prompts = 0  # §6.1: 25,000 prefixes (our sentiment task has 64)
        config.train.batch_size = 64  # App. B
        config.train.num_steps = 0  # epochs: the official repo's n_epochs = 1; paper step counts UNVERIFIED
        config.train.num_epochs = 1  # official repo default
        config.optimizer.name = "adamw"  # App. B uses RMSprop, which train/optimizer.py does not offer
        config.optimizer.learning_rate = 1e-6  # App. B
        config.optimizer.warmup_steps = 150  # App. B: linear warmup from 0 over 150 steps
        config.optimizer.schedule = "constant"  # App. B: constant after warmup
        config.optimizer.max_grad_norm = 10.0  # official repo max_grad_norm (paper: UNVERIFIED)
    if planning:
        config.model = config_defaults.planning_model(arg)
        config.data.max_length = 2048  # tokens per sequence (chosen and rejected each)
        config.train.batch_size = 8  # pairs per step
        config.loss.beta = 0.1  # App. B
    return config
