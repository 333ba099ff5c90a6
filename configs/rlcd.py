"""RLCD (Yang et al. 2023, arXiv 2307.12950) as a chain: contrast pairs from positive / negative prompt affixes ->
reward model -> (with a gold judge) its agreement with the judge -> PPO. Stages: rlaif_jax/pipelines/rlcd_stages.py;
prompt construction: rlaif_jax/feedback/rlcd.py.

    python -m rlaif_jax.main --config=configs/rlcd.py:tiny --workdir=/tmp/rlcd_tiny        # toy letters task
    python -m rlaif_jax.main --config=configs/rlcd.py:smollm2 --workdir=/tmp/rlcd_sent      # SmolLM2, VADER sentiment
    python -m rlaif_jax.main --config=configs/rlcd.py:smollm2_rescore --workdir=/tmp/rlcd_rescore  # RLCD-Rescore

`config.task` and `config.rlcd` are shared by every stage that uses them (FieldReferences): `--config.rlcd.num_pairs=16`
changes the pairs and the agreement stage alike; `--config.paths.policy=` sets the policy (= simulator = RM init) of
the smollm2 / paper chains. Each stage runs in WORKDIR/STAGE; WORKDIR/report.md has each stage's headline.

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
`--config.rlcd.num_pairs=16 --config.stages.rm.train.num_steps=2 --config.stages.rl.train.num_steps=2` for a smoke run.
Measured (128 pairs, RM 4 epochs at 1e-4, PPO 24 steps; 32 min on 2 CPU cores): the construction labels agree with
VADER on 80% of the pairs; the RM agrees with VADER on 73% of held-out contrast pairs and 64% of i.i.d. pairs of the
plain prompt; PPO on the RM raises held-out VADER 0.19 -> 0.66 at a KL of 1.6 nats/sequence.
`paper` holds RLCD's harmlessness setting (16 affix pairs, LLaMA-7B, HH prompts; PAPER_FACTS §2); its model and data
paths must be set, and values marked UNVERIFIED could not be checked against the paper body.
"""

import ml_collections

from rlaif_jax import config_defaults
from rlaif_jax.data import prompts as prompt_data

SIZES = ("tiny", "smollm2", "paper")


def _linked(block: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """A block whose every leaf is a FieldReference to `block`'s: one override changes every stage that has it."""
    return ml_collections.ConfigDict({key: block.get_ref(key) for key in block.keys()})


def _task(size: str) -> ml_collections.ConfigDict:
    tiny = size == "tiny"
    return ml_collections.ConfigDict(
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


def _rlcd(size: str, rescore: bool) -> ml_collections.ConfigDict:
    tiny = size == "tiny"
    return ml_collections.ConfigDict(
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
            rescore=rescore,  # RLCD-Rescore: relabel pairs with the A/B scoring prompt (the policy scores)
            rescore_batch_size=8,  # sequences per forward pass when rescoring
        )
    )


def get_config(arg: str = "tiny") -> ml_collections.ConfigDict:
    """arg: SIZE or SIZE_rescore (RLCD-Rescore), SIZE in 'tiny' (toy letters, random init + SFT), 'smollm2'
    (sentiment on SmolLM2-135M-Instruct) or 'paper' (RLCD's harmlessness setting)."""
    size, _, variant = arg.partition("_")
    if size not in SIZES or variant not in ("", "rescore"):
        raise ValueError(f"unknown argument {arg!r}; expected SIZE or SIZE_rescore with SIZE in {SIZES}")
    tiny, paper, rescore = size == "tiny", size == "paper", variant == "rescore"
    config = ml_collections.ConfigDict()
    config.job = "chain"  # rlaif_jax/pipelines/chain.py
    config.seed = 0  # affix draws, sampling keys, held-out split (every stage's seed)
    config.paths = ml_collections.ConfigDict(
        dict(policy="" if paper else "smollm2-135m-instruct")  # simulator = policy = RM init (RLCD §2.1)
    )
    config.task = _task(size)
    config.rlcd = _rlcd(size, rescore)
    if paper:
        _paper_settings(config)
    gold = "" if paper else ("toy" if tiny else "sentiment")  # the agreement stage's judge and PPO's held-out judge
    order = (["demos", "sft"] if tiny else []) + ["pairs", "rm"] + (["agreement"] if gold else []) + ["rl"]
    config.chain = ml_collections.ConfigDict(
        dict(
            title=f"RLCD{'-Rescore' if rescore else ''} ({size}): contrast pairs -> reward model -> PPO",
            order=order,
            notes=("tiny: stage-0 SFT teaches the random-init model the toy affixes (a stand-in for a pretrained LM).",)
            if tiny
            else (),
        )
    )
    config.stages = _stages(config, size, gold, rescore)
    return config


def _model(config, size: str, policy) -> ml_collections.ConfigDict:
    model = config_defaults.model("tiny" if size == "tiny" else "smollm2")
    model.name = policy
    if size == "paper":
        model.dtype = "bfloat16"  # bf16 decoding (patch); the simulator's load_in_8bit is not modelled
    return model


def _sampling_stage(job: str, config, size: str, policy) -> ml_collections.ConfigDict:
    """A stage of `job` that samples the policy on the shared task and RLCD settings."""
    return ml_collections.ConfigDict(
        dict(
            job=job,
            seed=config.get_ref("seed"),
            model=_model(config, size, policy),
            mesh=config_defaults.mesh(),
            task=_linked(config.task),
            rlcd=_linked(config.rlcd),
        )
    )


def _stages(config, size: str, gold: str, rescore: bool) -> ml_collections.ConfigDict:
    tiny = size == "tiny"
    load = config_defaults.load_config_file
    seed = config.get_ref("seed")
    stages = ml_collections.ConfigDict()
    policy = "@sft/hf_model" if tiny else config.paths.get_ref("policy")
    if tiny:
        stages.demos = ml_collections.ConfigDict(
            dict(
                job="rlcd_demos",
                seed=seed,
                affixes=config.rlcd.get_ref("affixes"),
                num_rows=1536,  # demonstrations: a third with no affix, positive, negative
                noise=(0.5, 0.0, 0.0),  # P(letter wrong) with no affix, a positive one, a negative one
            )
        )
        stages.sft = load("sft", "tiny")  # stage 0 (its data is the demos stage's)
        stages.sft.data.train_file = "@demos/sft_data.jsonl"
        stages.sft.data.use_chat_template = config.task.get_ref("use_chat_template")
        stages.sft.train.num_steps = 300  # enough for the affix-conditioned behaviours
        stages.sft.checkpoint.every_steps = 300  # one save at the end
        stages.sft.export_hf = True

    stages.pairs = _sampling_stage("rlcd_pairs", config, size, policy)
    pairs_file = "@pairs/pairs_rescored.jsonl" if rescore else "@pairs/pairs.jsonl"

    # The reward_model job (configs/reward_model.py) on the pairs, starting from the policy.
    stages.rm = load("reward_model", "tiny" if tiny else "smollm2")
    stages.rm.model = _model(config, size, policy)
    stages.rm.model.scalar_head = True
    stages.rm.data.source, stages.rm.data.train_file, stages.rm.data.eval_file = "jsonl", pairs_file, ""
    stages.rm.data.use_chat_template = config.task.get_ref("use_chat_template")
    stages.rm.data.max_length = 24 if tiny else 128  # prompt + response + EOS
    stages.rm.data.eval_fraction = 0.05  # pairs held out for the RM's own accuracy
    stages.rm.train.num_steps = 300 if tiny else 0  # 0 = num_epochs passes (tiny: 100 gave i.i.d. 0.53)
    stages.rm.train.num_epochs = 2 if tiny else 4  # passes over the pairs when num_steps is 0
    stages.rm.checkpoint.every_steps = 100 if tiny else 200
    stages.rm.export_hf = True
    if not tiny:
        # Small data: 2 epochs at 3e-5 left the RM at chance (loss 0.691 -> 0.673; held-out agreement 0.58 / 0.52).
        stages.rm.optimizer.learning_rate = 1e-4

    if gold:
        stages.agreement = _sampling_stage("rlcd_agreement", config, size, policy)
        stages.agreement.agreement = dict(
            gold_reward=gold,  # the gold judge: 'toy' or 'sentiment'
            num_prompts=0,  # held-out prompts (0 = all): toy has 256, sentiment 32
            pairs_per_prompt=1 if tiny else 2,  # contrast pairs and i.i.d. pairs drawn per held-out prompt
            reward_model="@rm",  # the RM's run directory
            train_pairs=pairs_file,  # the RM's training pairs (their construction labels are scored)
            max_length=stages.rm.data.get_ref("max_length"),
            batch_size=stages.rm.train.get_ref("eval_batch_size"),
        )

    # The online_rl job with PPO (configs/ppo.py) against the RM, on the task's prompts.
    stages.rl = load("ppo", "tiny" if tiny else "smollm2")
    stages.rl.model = _model(config, size, policy)
    stages.rl.sft_first = False
    stages.rl.train.num_steps = 32 if tiny else 24  # optimizer steps
    rl = stages.rl.rl
    source = prompt_data.source_config(
        config.task.name,
        eval_fraction=config.task.eval_fraction,
        dialogue=config.task.name == "hh_rlhf" or (config.rlcd.prompt_format == "dialogue" and not tiny),
    )
    rl.prompts = source
    for prompt_key, task_key in (
        ("task", "name"),
        ("train_file", "train_file"),
        ("eval_file", "eval_file"),
        ("field", "prompt_field"),
        ("data_dir", "data_dir"),
    ):
        rl.prompts[prompt_key] = config.task.get_ref(task_key)
    rl.reward = "reward_model:@rm"
    rl.use_chat_template = config.task.get_ref("use_chat_template")
    rl.gold_reward = gold  # '' = PPO is evaluated by the RM itself
    if size == "paper":
        _paper_rl(stages)
    return stages


def _paper_settings(config) -> None:
    """RLCD harmlessness, LLaMA-7B simulator and policy (RLCD7B); PAPER_FACTS §2.1-2.3."""
    config.paths.policy = ""  # set: path of LLaMA-7B (base, LLaMA-1; README)
    task, settings = config.task, config.rlcd
    task.name = "hh_rlhf"  # HH prompts (README): dialogues cut after the last 'Assistant:' (authors' main)
    task.data_dir = "harmless-base"  # README: harmless-base train.jsonl (~40k); eval: its test split
    task.train_file = ""  # '' = the hub's Anthropic/hh-rlhf; or a local copy of the dataset directory
    task.use_chat_template = False  # plain `Human:` / `Assistant:` text
    settings.affixes = "harmless"  # the 16 harmlessness pairs (simulate_preference_data.py)
    settings.prompt_format = "dialogue"  # affix on the final Assistant turn, opposite on earlier ones
    settings.postprocess = "dialogue"  # process_filter_result
    settings.num_pairs = 0  # every prompt once
    settings.max_new_tokens = 300  # code
    settings.temperature = 1.0  # code
    settings.max_prompt_length = 1024  # ours: the authors do not truncate (UNVERIFIED); LLaMA context 2048
    settings.batch_size = 32  # 16 prompts x 2 sides (README: batch 16 on one A100)
    settings.max_attempts = 6  # the first draw + max_retries 5 (code)
    # Not modelled: the banned tokens (backslash, backtick) of the authors' generate call.


def _paper_rl(stages) -> None:
    """The paper's RM and PPO settings (PAPER_FACTS §2; UNVERIFIED where marked)."""
    # No programmatic gold judge; for Table 5's agreement with 2,000 human labels set
    # stages.rm.data.eval_file to those HH pairs (JSONL prompt/chosen/rejected).
    rm = stages.rm
    rm.data.max_length = 1024  # UNVERIFIED
    rm.loss.type = "bradley_terry"  # RLCD: p+ output chosen, hard label
    rm.train.num_steps = 0  # UNVERIFIED: AlpacaFarm reward_modeling.sh defaults, not read
    rm.train.num_epochs = 1  # UNVERIFIED
    rm.train.batch_size = 64  # UNVERIFIED
    rm.optimizer.learning_rate = 1e-5  # UNVERIFIED
    # The RM's `\n\nHuman:` end token (patch comments) is not modelled: sequences end with EOS.
    rl = stages.rl.rl
    rl.kl_coef = 0.004  # README: "0.002 or 0.004"; per-task value UNVERIFIED
    rl.prompts_per_rollout = 512  # README: 512 rollouts per step
    rl.max_new_tokens = 300  # decode.eval (patch)
    rl.max_prompt_length = 1024  # UNVERIFIED
    rl.temperature = 1.0  # patch
    rl.eval_temperature = 1.0  # patch: one sample per prompt at temperature 1.0
    rl.minibatch_size = 64  # UNVERIFIED (AlpacaFarm step_per_device_batch_size 2 on N GPUs)
    rl.epochs = 1  # UNVERIFIED
    stages.rl.train.num_steps = 60 * 512 // 64  # README: 40-80 steps of 512 rollouts, chosen on dev (UNVERIFIED)
    rl.eval_prompts = 1000  # README: the first 1k of HH test are the dev prompts
    # No gold judge: PPO's held-out evaluation is scored by the trained RM (results name their judge).
