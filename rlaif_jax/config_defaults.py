"""Config blocks shared by the files in `configs/`: the mesh and the model choices behind `tiny` and `smollm2`."""

from __future__ import annotations

import importlib.util
import os

import ml_collections

from rlaif_jax import sharding
from rlaif_jax.data import prompts as prompt_data


def mesh() -> ml_collections.ConfigDict:
    """`config.mesh`: device mesh sizes (-1 = all remaining devices) and the logical-to-mesh axis rules."""
    return ml_collections.ConfigDict(
        dict(
            data=1,  # pure data parallelism (replicated params)
            fsdp=-1,  # data parallelism with params sharded along `embed` (ZeRO-3 style)
            tensor=1,  # Megatron-style tensor parallelism over heads / mlp / vocab
            num_devices=0,  # devices the mesh spans: 0 = all, N = the first N (one process: a job on part of a host)
            strict=False,  # a sharding rule that cannot apply to a parameter: False = warn and replicate, True = error
            rules=[list(rule) for rule in sharding.DEFAULT_RULES],  # (logical axis, mesh axes)
        )
    )


# A random-init T5 (v1.1 layout) for the byte tokenizer: `config.model.name = 'tiny_t5'` with this `tiny_t5` block.
TINY_T5 = dict(
    vocab_size=259,
    d_model=64,
    d_kv=16,
    d_ff=128,
    num_layers=2,
    num_decoder_layers=2,
    num_heads=4,
    relative_attention_num_buckets=32,
    relative_attention_max_distance=64,
    feed_forward_proj="gated-gelu",
    tie_word_embeddings=False,
    scale_decoder_outputs=False,
    decoder_start_token_id=257,  # '<|im_start|>'
    pad_token_id=258,
    eos_token_ids=(258,),  # '<|im_end|>'
)


def model(arg: str) -> ml_collections.ConfigDict:
    """`config.model` for a size argument: 'tiny' (random init, seconds) or 'smollm2' (the real CPU model)."""
    if arg not in ("tiny", "smollm2"):
        raise ValueError(f"unknown size argument {arg!r}; expected 'tiny', 'smollm2' or 'paper'")
    return ml_collections.ConfigDict(
        dict(
            name="tiny" if arg == "tiny" else "smollm2-135m-instruct",  # path, alias, hub id, 'random:ARCH', 'tiny'
            dtype="float32",  # activations (compute); matmuls accumulate in float32 either way
            param_dtype="",  # master weights and the optimizer's moments; '' = dtype
            remat="none",  # recompute in the backward pass: 'none', 'dots' (keep matmul outputs) or 'full'
            attention="auto",  # 'auto' (cuDNN flash on GPU, splash on TPU, XLA else), 'xla', 'cudnn', 'splash'
            vocab_chunk_size=16384,  # LM-head columns per chunk of the losses' log-probs; 0 = the whole vocabulary
            scan_layers=True,  # stacked layers under nn.scan; False = one tree per layer
            scalar_head=False,  # add a value / reward head
            seed=0,  # initialisation seed of the tiny model (and of LoRA adapters)
            # LoRA (models/lora.py): rank 0 = off. Only the adapters (and a scalar head) train and are checkpointed;
            # the reference policy is the base with adapters off; save_hf merges them into the weights. Dropout acts
            # in SFT-style and reward-model training; DPO and RL compare passes, so there it is off (TRL's default).
            lora=dict(rank=0, alpha=16.0, dropout=0.0, targets=("q", "k", "v", "o", "gate", "up", "down")),
            # Architecture of the random-init model (byte tokenizer, 259 ids); ignored unless name == 'tiny'.
            tiny=dict(
                vocab_size=259,
                hidden_size=64,
                intermediate_size=128,
                num_layers=2,
                num_heads=4,
                num_kv_heads=2,
                head_dim=16,
                max_position_embeddings=512,
                bos_token_id=257,
                eos_token_ids=(258,),
                pad_token_id=258,
            ),
        )
    )


PLANNING_SIZES = ("llama3_1b", "llama3_8b")  # shape-only configs: `experiments/aot_memory.py`, device benchmarks


def planning_model(arch: str) -> ml_collections.ConfigDict:
    """`config.model` of a shape-only size: a random initialisation of the Llama-3.2-1B or Llama-3.1-8B architecture
    (`models/architectures.py`; no weights, no tokenizer) in bf16 compute with f32 master weights and full remat,
    the memory settings those sizes train with."""
    block = model("smollm2")
    block.name = f"random:{arch}"  # shape-only: no checkpoint is read
    block.dtype = "bfloat16"  # activations
    block.param_dtype = "float32"  # master weights and Adam moments
    block.remat = "full"  # recompute each layer in the backward pass
    return block


def prompts(task: str, **overrides) -> ml_collections.ConfigDict:
    """A prompt-source block (data/prompts.py) of `task`: one of data/prompts.py's TASKS ('toy', 'arithmetic', ...)."""
    return prompt_data.source_config(task, **overrides)


def optimizer(**overrides) -> ml_collections.ConfigDict:
    """`config.optimizer`: AdamW with global-norm clipping and a warmup + decay schedule."""
    values = dict(
        name="adamw",  # 'adamw', 'adafactor' (factored second moments; RLAIF App. G) or 'sgd'
        learning_rate=1e-3,  # peak learning rate
        schedule="cosine",  # 'constant', 'linear' or 'cosine' decay after warmup
        warmup_steps=0,  # linear warmup from 0
        final_lr_fraction=0.1,  # decayed learning rate at num_steps, as a fraction of the peak
        b1=0.9,  # Adam beta1
        b2=0.95,  # Adam beta2
        eps=1e-8,  # Adam epsilon
        weight_decay=0.0,  # decoupled weight decay
        max_grad_norm=1.0,  # global-norm clipping; 0 = off
    )
    values.update(overrides)
    return ml_collections.ConfigDict(values)


def checkpoint(**overrides) -> ml_collections.ConfigDict:
    """`config.checkpoint`: orbax train-state checkpoints under WORKDIR/checkpoints/."""
    values = dict(
        every_steps=10,  # save every this many steps (and at the end)
        keep=3,  # newest checkpoints kept
    )
    values.update(overrides)
    return ml_collections.ConfigDict(values)


def rl(arg: str, algorithm: str) -> ml_collections.ConfigDict:
    """`config.rl` of the online RL job for the tiny toy task or the SmolLM2 sentiment task."""
    tiny = arg == "tiny"
    return ml_collections.ConfigDict(
        dict(
            algorithm=algorithm,  # 'ppo', 'reinforce' (RLAIF App. F), 'rloo' or 'grpo'
            loss="grpo",  # algorithm 'grpo': 'grpo', 'dr_grpo', 'dapo' or 'gspo' (losses/grpo.py)
            prompts=prompts("toy" if tiny else "sentiment"),  # prompt source (data/prompts.py)
            reward="toy" if tiny else "sentiment",  # trained-on reward, by name (rewards/by_name.py): 'toy',
            # 'sentiment', 'arithmetic', 'reward_model:RM_WORKDIR', 'd_rlaif:...', rules, or a sum 'a + 0.1*format'
            gold_reward="toy" if tiny else "sentiment",  # judge of the held-out evaluation; '' = the trained-on reward
            use_chat_template=not tiny,  # prompts as a chat user turn
            max_prompt_length=16 if tiny else 64,  # prompts are left-padded to this many tokens
            max_new_tokens=8 if tiny else 48,  # response length cap
            temperature=1.0,  # rollout sampling temperature
            eval_temperature=1.0,  # evaluation sampling temperature
            eval_prompts=64 if tiny else 32,  # held-out prompts scored at start and end
            prompts_per_rollout=32 if tiny else 16,  # prompts sampled per iteration
            samples_per_prompt=4,  # the group size k of RLOO / GRPO (other algorithms draw one sample per prompt)
            minibatch_size=32 if tiny else 16,  # sequences per optimizer step
            epochs=2 if algorithm == "ppo" else 1,  # passes over each rollout
            kl_coef=0.05 if algorithm != "ppo" else 0.02,  # β of the KL penalty
            kl_estimator="k1",  # per-token KL estimator in the PPO reward: 'k1', 'k2', 'k3', 'abs'
            adaptive_kl=False,  # Ziegler et al. adaptive KL controller
            kl_target=6.0,  # adaptive controller: target sequence KL
            kl_horizon=10000,  # adaptive controller: horizon (in sequences)
            gamma=1.0,  # PPO GAE discount
            lam=0.95,  # PPO GAE lambda
            clip_ratio=0.2,  # PPO / GRPO policy clip ε (GRPO: ε_low)
            clip_ratio_high=0.0,  # GRPO family ε_high (DAPO's clip-higher); 0 = clip_ratio
            kl_in_reward=False,  # GRPO: β·KL (k1) subtracted from the reward instead of β·k3 in the loss
            tis_cap=0.0,  # truncated importance sampling cap C on π_trainer / π_sampler per token; 0 = off
            old_logprobs="trainer",  # π_old of the ratios and the KL: 'trainer' (recomputed; logs the sampler gap)
            # or 'sampler' (the sampler's own log-probs: one forward pass less per rollout, exact to 1e-5 in f32)
            shared_prefix=True,  # the k samples of a prompt run the prompt once when scored and trained on
            drop_equal_groups=False,  # GRPO / RLOO: mask out groups whose rewards are all equal (DAPO)
            overlong_filter=False,  # mask out responses cut at max_new_tokens without a stop token (DAPO)
            overlong_cache=0,  # DAPO soft overlong penalty band L_cache (tokens before max_new_tokens); 0 = off
            value_clip=0.2,  # PPO value clip
            value_coef=0.5,  # weight of the value loss
            entropy_coef=0.0,  # entropy bonus
            ptx_coef=0.0,  # PPO-ptx γ (pretraining log-likelihood weight)
            ptx_data=dict(
                file="",  # PPO-ptx text corpus: .txt (blank-line separated) or .jsonl; '' = toy demonstrations (toy)
                field="text",  # .jsonl column of the documents
                max_length=0,  # tokens per pretraining window; 0 = max_prompt_length + max_new_tokens
            ),
            baseline="prompt",  # REINFORCE baseline: 'prompt' V(x) or 'per_token' V(x, y_<t) (RLAIF App. F)
            value_init="",  # model dir of the value network's start (e.g. the reward model's hf_model); '' = policy
            value_learning_rate=0.0,  # peak LR of the value network (InstructGPT C.4: 9e-6); 0 = config.optimizer's
        )
    )


def rlaif_tldr_rl(rl: ml_collections.ConfigDict) -> None:
    """Sets `config.rl` to RLAIF's summarisation RL task (App. G): TL;DR posts, 1024-token inputs, plain text
    (PaLM 2 is not a chat model), no gold judge (the held-out evaluation is scored by the trained-on reward)."""
    rl.prompts = prompts("tldr")  # Reddit TL;DR posts (CarperAI split: train / valid)
    rl.gold_reward = ""  # no gold judge: held-out evaluation by the trained-on reward (named in results)
    rl.use_chat_template = False  # 'SUBREDDIT: ... TL;DR:' plain text
    rl.max_prompt_length = 1024  # App. G: max input length
    rl.eval_prompts = 2000  # held-out posts scored at start and end (ours; the paper's win rates use ~2k)


CONFIGS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")


def load_config_file(name: str, arg: str) -> ml_collections.ConfigDict:
    """`get_config(arg)` of `configs/NAME.py` (for a pipeline that runs another stage first, e.g. SFT before RL)."""
    path = os.path.join(CONFIGS_DIR, f"{name}.py")
    if not os.path.exists(path):
        raise FileNotFoundError(f"no config file {path}")
    spec = importlib.util.spec_from_file_location(f"rlaif_jax_configs_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg)


def win_rate_stage(size: str, policy_a, policy_b, judge: str) -> ml_collections.ConfigDict:
    """A chain's win-rate stage (configs/win_rate.py at `size`): policy_a = (model, label) against policy_b, both
    sampled at T = 1, judged by the gold judge ('gold') or by the AI labeler with the 'helpful' template ('ai');
    32 held-out prompts at the smollm2 size."""
    stage = load_config_file("win_rate", size)
    stage.policy_a.model.name, stage.policy_a.label = policy_a
    stage.policy_b.model.name, stage.policy_b.label = policy_b
    stage.policy_a.temperature = stage.policy_b.temperature = 1.0
    stage.judge.kind = judge
    if judge == "ai":
        stage.judge.template = "helpful"
    if size != "tiny":
        stage.num_prompts = 32
    return stage


def online_rl(arg: str, algorithm: str) -> ml_collections.ConfigDict:
    """The whole config of the `online_rl` job for 'tiny' (toy task, SFT first) or 'smollm2' (sentiment); the
    'paper' size starts from 'smollm2' and each config file sets the paper's values on top."""
    if arg not in ("tiny", "smollm2", "paper"):
        raise ValueError(f"unknown argument {arg!r}; expected 'tiny', 'smollm2' or 'paper'")
    size = "tiny" if arg == "tiny" else "smollm2"
    config = ml_collections.ConfigDict()
    config.job = "online_rl"  # pipeline in rlaif_jax/pipelines
    config.seed = 0  # rollout rng = fold_in(key(seed), iteration)
    config.model = model(size)
    config.mesh = mesh()
    config.rl = rl(size, algorithm)
    config.train = ml_collections.ConfigDict(
        dict(
            num_steps=120 if arg == "tiny" else 24,  # optimizer steps in the run
            stop_at_step=0,  # stop at the first iteration end at or past this step (as if preempted); 0 = never
            max_nonfinite_steps=3,  # stop with an error after more non-finite steps than this
        )
    )
    config.optimizer = optimizer(learning_rate=1e-3 if arg == "tiny" else 1e-5, schedule="constant")
    config.checkpoint = ml_collections.ConfigDict(dict(every_iterations=5, keep=2))  # checkpoint cadence / kept
    config.sft_first = arg == "tiny"  # run `config.sft` into WORKDIR/sft first and start RL from its result
    config.sft = load_config_file("sft", size)  # the SFT stage (configs/sft.py)
    config.sft.export_hf = True  # RL loads the SFT result from WORKDIR/sft/hf_model
    config.export_hf = False  # write the trained policy to WORKDIR/hf_model at the end
    return config
