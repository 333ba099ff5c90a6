"""RLCD (Yang et al. 2023, arXiv 2307.12950): contrast pairs from positive / negative prompt affixes -> reward model ->
PPO. Stages and outputs: rlaif_jax/pipelines/rlcd.py; prompt construction: rlaif_jax/feedback/rlcd.py.

    python -m rlaif_jax.main --config=configs/rlcd.py:tiny --workdir=/tmp/rlcd_tiny        # toy letters task
    python -m rlaif_jax.main --config=configs/rlcd.py:smollm2 --workdir=/tmp/rlcd_sent      # SmolLM2, VADER sentiment
    python -m rlaif_jax.main --config=configs/rlcd.py:smollm2 --workdir=/tmp/rlcd_rescore --config.rlcd.rescore=True

`tiny` first fine-tunes a random-init model on toy demonstrations whose letters are right with probability 0.95
after a positive affix ("letter: c (accurate)"), 0.05 after a negative one ("(careless)") and 0.5 with none, a
stand-in for a pretrained LM that understands the affixes. Then it samples 256 contrast pairs, trains a reward model
on them, measures its agreement with the gold toy reward on fresh held-out pairs (WORKDIR/rm_gold_agreement.json)
and runs PPO on it (WORKDIR/ppo/eval_start.json, eval_end.json: held-out gold reward before and after). Measured
(~1 min on 2 CPU cores): label accuracy of the contrast pairs 0.96, RM-gold agreement 0.97 on held-out contrast
pairs and 0.66 on i.i.d. pairs of the plain prompt, PPO on the RM 0.43 -> 0.96 gold at 3.5 nats.
`smollm2` runs the sentiment task on SmolLM2-135M-Instruct: the review prompts of rlaif_jax/data/sentiment.py with
"(giving a glowing, enthusiastic review)" / "(giving a harsh, negative review)" appended to the user turn (the chat
template fixes the assistant header, so the affix cannot go on the `Assistant:` turn as in the paper); gold judge
VADER. On 2 CPU cores sampling costs ~0.8 s per 48-token sample, so the full config takes an hour or more: try
`--config.rlcd.num_pairs=16 --config.reward_model.train.num_steps=2 --config.ppo.train.num_steps=2` for a smoke run.
Measured (128 pairs, RM 4 epochs at 1e-4, PPO 24 steps; 32 min on 2 CPU cores): the construction labels agree with
VADER on 80% of the pairs; the RM agrees with VADER on 73% of held-out contrast pairs and 64% of i.i.d. pairs of the
plain prompt; PPO on the RM raises held-out VADER 0.19 -> 0.66 at a KL of 1.6 nats/sequence.
`paper` holds RLCD's harmlessness setting (16 affix pairs, LLaMA-7B, HH prompts; PAPER_FACTS §2); its model and data
paths must be set, and values marked UNVERIFIED could not be checked against the paper body.
"""

import ml_collections

from rlaif_jax import config_defaults


def get_config(arg: str = "tiny") -> ml_collections.ConfigDict:
    """arg: 'tiny' (toy letters, random init + SFT), 'smollm2' (sentiment on SmolLM2-135M-Instruct) or 'paper'."""
    if arg not in ("tiny", "smollm2", "paper"):
        raise ValueError(f"unknown argument {arg!r}; expected 'tiny', 'smollm2' or 'paper'")
    tiny = arg == "tiny"
    config = ml_collections.ConfigDict()
    config.job = "rlcd"  # pipeline in rlaif_jax/pipelines
    config.seed = 0  # affix draws, sampling keys, held-out split
    config.model = config_defaults.model("tiny" if tiny else "smollm2")  # simulator = policy = RM init (RLCD §2.1)
    config.mesh = config_defaults.mesh()
    config.task = ml_collections.ConfigDict(
        dict(
            name="toy" if tiny else "sentiment",  # prompts: 'toy', 'sentiment', 'reviews', 'jsonl', 'tldr', 'hh_rlhf'
            train_file="",  # 'jsonl': prompts in column prompt_field; 'tldr' / 'hh_rlhf': local copy ('' = hub)
            eval_file="",  # task 'jsonl': held-out prompts; '' = eval_fraction of train_file
            eval_fraction=0.05,  # task 'jsonl' without eval_file: share of train_file held out
            prompt_field="prompt",  # column of the prompt ('chosen' reads hh-rlhf transcripts, cut at 'Assistant:')
            data_dir="",  # task 'hh_rlhf': subset such as 'harmless-base' ('' = all)
            use_chat_template=not tiny,  # prompts as a chat user turn (also for the RM and PPO)
        )
    )
    config.rlcd = ml_collections.ConfigDict(
        dict(
            affixes="toy" if tiny else "sentiment",  # affix pairs: 'toy', 'sentiment', 'harmless' (16), 'helpful' (1)
            prompt_format="instruction",  # 'instruction': prompt + " " + affix; 'dialogue': the Assistant-turn rule
            postprocess="chat",  # 'chat': strip, drop empties; 'dialogue': the authors' process_filter_result
            num_pairs=1024 if tiny else 128,  # prompts contrasted (cycling through the task's); 0 = each prompt once
            max_new_tokens=8 if tiny else 48,  # tokens sampled per side
            temperature=1.0,  # sampling temperature (RLCD: 1.0, do_sample)
            max_prompt_length=32 if tiny else 96,  # longer affixed prompts are dropped (counted in pairs_stats.json)
            batch_size=256 if tiny else 32,  # sequences per generate call (both sides of a pair count)
            max_attempts=1 if tiny else 2,  # draws per side until post-processing accepts one (RLCD: 1 + 5 retries)
            rescore=False,  # RLCD-Rescore: relabel pairs with the A/B scoring prompt (the policy scores)
            rescore_batch_size=8,  # sequences per forward pass when rescoring
        )
    )
    config.agreement = ml_collections.ConfigDict(
        dict(
            gold_reward="toy" if tiny else "sentiment",  # gold judge of stage 3 ('' = skip): 'toy' or 'sentiment'
            num_prompts=0,  # held-out prompts (0 = all): toy has 256, sentiment 32
            pairs_per_prompt=1 if tiny else 2,  # contrast pairs and i.i.d. pairs drawn per held-out prompt
        )
    )
    config.sft_first = tiny  # stage 0: teach the random-init model the toy affixes (WORKDIR/sft)
    if tiny:
        config.sft = config_defaults.load_config_file("sft", "tiny")  # stage 0 settings (its data is written)
        config.sft.train.num_steps = 300  # enough for the affix-conditioned behaviours
        config.sft.checkpoint.every_steps = 300  # one save at the end
        config.sft_data = ml_collections.ConfigDict(
            dict(
                num_rows=1536,  # demonstrations: a third with no affix, positive, negative
                noise=(0.5, 0.0, 0.0),  # P(letter wrong) with no affix, a positive one, a negative one
            )
        )

    # Stage 2: the reward_model job (configs/reward_model.py); the pipeline sets model, mesh, data source and file.
    config.reward_model = config_defaults.load_config_file("reward_model", "tiny" if tiny else "smollm2")
    config.reward_model.data.max_length = 24 if tiny else 128  # prompt + response + EOS
    config.reward_model.data.eval_fraction = 0.05  # pairs held out for the RM's own accuracy
    config.reward_model.train.num_steps = 300 if tiny else 0  # 0 = num_epochs passes (tiny: 100 gave i.i.d. 0.53)
    config.reward_model.train.num_epochs = 2 if tiny else 4  # passes over the pairs when num_steps is 0
    config.reward_model.checkpoint.every_steps = 100 if tiny else 200
    if not tiny:
        # Small data: 2 epochs at 3e-5 left the RM at chance (loss 0.691 -> 0.673; held-out agreement 0.58 / 0.52).
        config.reward_model.optimizer.learning_rate = 1e-4

    # Stage 4: the online_rl job with PPO (configs/ppo.py); model, mesh, task and reward are set by the pipeline.
    config.ppo = config_defaults.load_config_file("ppo", "tiny" if tiny else "smollm2")
    config.ppo.sft_first = False  # starts from config.model (tiny: the stage-0 model)
    config.ppo.train.num_steps = 32 if tiny else 24  # optimizer steps
    config.run_ppo = True  # stage 4 on/off

    if arg == "paper":
        # RLCD harmlessness, LLaMA-7B simulator and policy (RLCD7B); PAPER_FACTS §2.1-2.3.
        config.model.name = ""  # set: path of LLaMA-7B (base, LLaMA-1; README)
        config.model.dtype = "bfloat16"  # bf16 decoding (patch); the simulator's load_in_8bit is not modelled
        config.task.name = "hh_rlhf"  # HH prompts (README): dialogues cut after the last 'Assistant:' (authors' main)
        config.task.data_dir = "harmless-base"  # README: harmless-base train.jsonl (~40k); eval: its test split
        config.task.train_file = ""  # '' = the hub's Anthropic/hh-rlhf; or a local copy of the dataset directory
        config.task.use_chat_template = False  # plain `Human:` / `Assistant:` text
        config.rlcd.affixes = "harmless"  # the 16 harmlessness pairs (simulate_preference_data.py)
        config.rlcd.prompt_format = "dialogue"  # affix on the final Assistant turn, opposite on earlier ones
        config.rlcd.postprocess = "dialogue"  # process_filter_result
        config.rlcd.num_pairs = 0  # every prompt once
        config.rlcd.max_new_tokens = 300  # code
        config.rlcd.temperature = 1.0  # code
        config.rlcd.max_prompt_length = 1024  # ours: the authors do not truncate (UNVERIFIED); LLaMA context 2048
        config.rlcd.batch_size = 32  # 16 prompts x 2 sides (README: batch 16 on one A100)
        config.rlcd.max_attempts = 6  # the first draw + max_retries 5 (code)
        # Not modelled: the banned tokens (backslash, backtick) of the authors' generate call.
        config.agreement.gold_reward = ""  # no programmatic gold judge; for Table 5's agreement with 2,000 human
        # labels set config.reward_model.data.eval_file to those HH pairs (JSONL prompt/chosen/rejected).
        config.reward_model.data.max_length = 1024  # UNVERIFIED
        config.reward_model.data.use_chat_template = False
        config.reward_model.loss.type = "bradley_terry"  # RLCD: p+ output chosen, hard label
        config.reward_model.train.num_steps = 0  # UNVERIFIED: AlpacaFarm reward_modeling.sh defaults, not read
        config.reward_model.train.num_epochs = 1  # UNVERIFIED
        config.reward_model.train.batch_size = 64  # UNVERIFIED
        config.reward_model.optimizer.learning_rate = 1e-5  # UNVERIFIED
        # The RM's `\n\nHuman:` end token (patch comments) is not modelled: sequences end with EOS.
        config.ppo.rl.kl_coef = 0.004  # README: "0.002 or 0.004"; per-task value UNVERIFIED
        config.ppo.rl.prompts_per_rollout = 512  # README: 512 rollouts per step
        config.ppo.rl.max_new_tokens = 300  # decode.eval (patch)
        config.ppo.rl.max_prompt_length = 1024  # UNVERIFIED
        config.ppo.rl.temperature = 1.0  # patch
        config.ppo.rl.eval_temperature = 1.0  # patch: one sample per prompt at temperature 1.0
        config.ppo.rl.minibatch_size = 64  # UNVERIFIED (AlpacaFarm step_per_device_batch_size 2 on N GPUs)
        config.ppo.rl.epochs = 1  # UNVERIFIED
        config.ppo.train.num_steps = 60 * 512 // 64  # README: 40-80 steps of 512 rollouts, chosen on dev (UNVERIFIED)
        config.ppo.rl.eval_prompts = 1000  # README: the first 1k of HH test are the dev prompts
        # No gold judge: PPO's held-out evaluation is scored by the trained RM (results name their judge).
    return config
