"""PPO against a reward with a per-token KL penalty to the start policy (InstructGPT §3.5, App. C.4); PPO-ptx with
`--config.rl.ptx_coef=27.8`.

    python -m rlaif_jax.main --config=configs/ppo.py:tiny --workdir=/tmp/ppo_tiny       # toy task: SFT, then PPO
    python -m rlaif_jax.main --config=configs/ppo.py:smollm2 --workdir=/tmp/ppo_sent    # SmolLM2, VADER sentiment

`tiny` first fine-tunes a random-init model on noisy toy demonstrations (WORKDIR/sft), then runs PPO on the gold
reward; WORKDIR/eval_start.json and eval_end.json hold the held-out gold reward and KL before and after
(experiments/results/rl_toy.md, measured: 0.48 -> 0.96 at 3.2 nats/sequence; PPO-ptx with γ = 1 on the toy
demonstrations as the corpus: 0.48 -> 0.94). `paper` samples HH helpful-base prompts (InstructGPT's API prompts
are not public), starts the value function from the reward model (`rl.value_init`) at its own learning rate
(`rl.value_learning_rate`) and mixes in a text corpus (`rl.ptx_data.file`). InstructGPT end to end: train
configs/reward_model.py:tiny into RM_DIR, then add `--config.rl.reward=reward_model:RM_DIR` to train on the learned
reward (minus its §3.5 bias). `llama3_1b` / `llama3_8b` are shape-only (a PPO minibatch step of those
architectures: policy and value trained, the reference frozen; 8 sequences of 1024 prompt + 1024 response tokens,
bf16 compute, f32 weights, full remat) for compile-only memory planning:
    python experiments/aot_memory.py --config=configs/ppo.py:llama3_1b --mesh=fsdp=8 --seq_len=2048 --batch_size=8
"""

import ml_collections

from rlaif_jax import config_defaults


def get_config(arg: str = "tiny") -> ml_collections.ConfigDict:
    """arg: 'tiny' (toy task), 'smollm2' (sentiment on SmolLM2-135M-Instruct), 'paper' (InstructGPT C.4), or the
    shape-only 'llama3_1b' / 'llama3_8b'."""
    planning = arg in config_defaults.PLANNING_SIZES
    config = config_defaults.online_rl("smollm2" if planning else arg, "ppo")  # job, model, mesh, rl, train, ...
    if planning:
        config.model = config_defaults.planning_model(arg)
        config.rl.max_prompt_length = 1024  # App. C: prompts up to 1k tokens
        config.rl.max_new_tokens = 1024  # App. C: responses up to 1k tokens
        config.rl.minibatch_size = 8  # sequences per optimizer step
        config.rl.prompts_per_rollout = 8
        config.rl.use_chat_template = False
        config.train.num_steps = 8
    if arg == "paper":
        # InstructGPT App. C.4. The 1.3B-175B GPT-3 policies are not public: set config.model.name.
        config.model.name = ""  # set: path of the SFT policy
        # InstructGPT's API prompts are not public; Anthropic HH helpful-base dialogues stand in (not the paper's).
        config.rl.prompts = config_defaults.prompts("hh_rlhf", data_dir="helpful-base")
        config.rl.reward = "reward_model:"  # set: append the K-way ranking reward model's workdir (6B in C.2)
        config.rl.value_init = ""  # set: the reward model's hf_model (§3.5: the value function starts from the RM)
        config.rl.value_learning_rate = 9e-6  # C.4: value LR (1.3B and 6B policies)
        config.rl.gold_reward = ""  # no gold judge: held-out evaluation by the trained reward (named in results)
        config.rl.use_chat_template = False  # plain-text prompts (GPT-3 is not a chat model)
        config.rl.max_prompt_length = 1024  # App. C: prompts over 1k tokens are filtered
        config.rl.max_new_tokens = 1024  # App. C: max response 1k tokens
        config.rl.ptx_data.file = ""  # set: a pretraining-style corpus (.txt / .jsonl; GPT-3's mix is not public)
        # C.4 uses 8x as many pretraining rows as RL episodes; ours draws one per episode (not modelled).
        config.rl.kl_coef = 0.02  # C.4, eq. 2
        config.rl.ptx_coef = 27.8  # C.4 (PPO-ptx; 0 for plain PPO)
        config.rl.prompts_per_rollout = 512  # C.4 batch size
        config.rl.minibatch_size = 64  # C.4 (8 minibatches)
        config.rl.epochs = 1  # C.4: one inner epoch
        config.rl.gamma = 1.0  # C.4: no discount
        config.rl.lam = 0.95  # GAE λ UNVERIFIED (not stated in the text read)
        config.rl.clip_ratio = 0.2  # C.4
        config.rl.temperature = 1.0  # C.4 rollout temperature
        config.train.num_steps = 256_000 // 64  # C.4: 256k episodes at minibatch 64
        config.optimizer.learning_rate = 9e-6  # the policy's peak LR is UNVERIFIED (C.4 gives only the value LR)
        config.optimizer.warmup_steps = 10 * 8  # C.4: warmup over the first 10 iterations (8 minibatches each)
    return config
