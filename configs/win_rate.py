"""Win rate of policy A against policy B on held-out prompts, judged in both orders, with a bootstrap CI and the
length-controlled win rate (RLAIF §2.3, §3.4, App. J).

    python -m rlaif_jax.main --config=configs/win_rate.py:tiny --workdir=/tmp/win_rate_tiny          # seconds
    python -m rlaif_jax.main --config=configs/win_rate.py:tiny --workdir=/tmp/win_rate_sft \
        --config.policy_a.model.name=/tmp/sft_tiny/hf_model --config.policy_a.label=sft        # after sft.py:tiny
    python -m rlaif_jax.main --config=configs/win_rate.py:smollm2 --workdir=/tmp/win_rate_smollm2 \
        --config.policy_a.model.name=POLICY_DIR/hf_model                                        # a trained policy

Writes WORKDIR/win_rate.json, win_rate.md, win_rate_ci.png, win_rate_examples.jsonl (per-pair probabilities and
outcomes) and generations_a/_b.jsonl (reuse with --config.policy_a.generations_file=...).
`tiny` compares two random-init models on the toy letters task under the gold reward: neither writes the prompt's
letter, so nearly every pair ties (measured: 0.516, 95% CI [0.477, 0.555], 4/58/2 wins/ties/losses of 64; ~10 s
of CPU). The SFT model of the second command (sft.py:tiny with --config.export_hf=True first) beats a random one
0.984 [0.961, 1.0] (62/2/0; gold reward 0.48 vs 0.004). `smollm2` compares SmolLM2 sampled at T=0.7 against its
greedy answers on the 32 held-out movie-review prompts under the VADER sentiment gold reward (measured: 0.50,
CI [0.34, 0.69], 16/0/16; length-controlled 0.50; ~1 min of CPU).
`paper` is RLAIF's comparison (RLAIF vs SFT on ~2k held-out contexts, §3.4) with an AI judge in place of the
human raters; its policies, judge and prompts are paths to set.
"""

import ml_collections

from rlaif_jax import config_defaults


def policy(arg: str, *, label: str, seed: int, temperature: float) -> ml_collections.ConfigDict:
    """One side of the comparison: a model to sample from (or a generations file to read)."""
    size = "tiny" if arg == "tiny" else "smollm2"
    model = config_defaults.model(size)
    model.seed = seed
    model.scan_layers = False  # inference only: per-layer weights decode faster on CPU
    return ml_collections.ConfigDict(
        dict(
            label=label,  # name in the report
            model=model,  # path, alias, hub id or 'tiny' (random init from model.tiny and model.seed)
            temperature=temperature,  # sampling temperature; 0 = greedy
            generations_file="",  # a generate-job generations.jsonl to read instead of sampling
        )
    )


def get_config(arg: str = "tiny") -> ml_collections.ConfigDict:
    """arg: 'tiny' (random tiny models, toy task), 'smollm2' (SmolLM2, sentiment task) or 'paper' (RLAIF)."""
    if arg not in ("tiny", "smollm2", "paper"):
        raise ValueError(f"unknown argument {arg!r}; expected 'tiny', 'smollm2' or 'paper'")
    tiny = arg == "tiny"
    config = ml_collections.ConfigDict()
    config.job = "win_rate"  # pipeline in rlaif_jax/pipelines
    config.seed = 0  # sampling rng = fold_in(key(seed), policy index, batch start); bootstrap seed
    config.mesh = config_defaults.mesh()
    config.prompts = config_defaults.prompts("toy" if tiny else "sentiment")  # held-out prompts (data/prompts.py)
    config.prompts_file = ""  # a .txt / .jsonl ("prompt") of held-out prompts; overrides task
    config.num_prompts = 64 if tiny else 32  # first this many held-out prompts; 0 = all
    config.use_chat_template = not tiny  # prompts as a chat user turn
    config.max_prompt_length = 16 if tiny else 64  # longest prompt allowed, in tokens
    config.max_new_tokens = 8 if tiny else 48  # response length cap
    config.batch_size = 64 if tiny else 16  # prompts per sampler call
    if tiny:
        config.policy_a = policy(arg, label="tiny-seed0", seed=0, temperature=1.0)
        config.policy_b = policy(arg, label="tiny-seed1", seed=1, temperature=1.0)
    else:
        config.policy_a = policy(arg, label="smollm2-T0.7", seed=0, temperature=0.7)
        config.policy_b = policy(arg, label="smollm2-greedy", seed=0, temperature=0.0)
    judge_model = config_defaults.model("tiny" if tiny else "smollm2")
    judge_model.scan_layers = False
    judge_model.tiny.max_position_embeddings = 4096  # the labeling prompt is ~1k bytes for the byte tokenizer
    config.judge = ml_collections.ConfigDict(
        dict(
            kind="gold",  # 'gold' (a programmatic reward) or 'ai' (the RLAIF labeler, both orders)
            gold_reward="toy" if tiny else "sentiment",  # gold judge: 'toy' or 'sentiment'
            model=judge_model,  # AI judge: the labeler model (path, alias, hub id or 'tiny')
            template="helpful",  # AI judge: feedback/templates.py name or task ('summarize', 'helpful', 'harmless')
            num_shots=0,  # AI judge: few-shot exemplars of the template
            cot=False,  # AI judge: two-step chain of thought (RLAIF §2.1.2)
            use_chat_template=False,  # AI judge: labeling prompt as a chat user turn
            batch_size=8,  # AI judge: sequences per forward pass
        )
    )
    config.harmless = ml_collections.ConfigDict(
        dict(
            judge="",  # harmless rate of each policy (§2.3): '' = off, 'ai' (judge.model rates each response), 'gold'
            threshold=0.5,  # harmless when P(harmless) ('ai') or the gold reward ('gold') exceeds this
        )
    )
    config.eval = ml_collections.ConfigDict(
        dict(
            tie_band=0.0,  # a pair ties when |mean P(A) - 0.5| <= tie_band
            ties_on_disagreement=True,  # a pair also ties when the two orders prefer opposite sides
            num_resamples=1000,  # bootstrap resamples of the win-rate CI; 0 = no CI
            confidence=0.95,  # CI level
            length_feature="log_ratio",  # App. J regressor: 'log_ratio' (log len A/len B) or 'ratio' (literal)
            lc_resamples=200,  # bootstrap resamples of the length-controlled CI (refits each time); 0 = none
        )
    )
    if arg == "paper":
        # RLAIF §3.4: ~2k held-out contexts, RLAIF policy vs SFT. The PaLM 2 policies are not public: set paths.
        config.prompts_file = ""  # set: held-out contexts (e.g. TL;DR test posts), one "prompt" per row
        config.num_prompts = 2000  # §3.4: about 2k unique rating instances
        config.use_chat_template = False  # PaLM 2 XS policies read raw text
        config.max_prompt_length = 1024  # App. G: max input length 1024 tokens
        config.max_new_tokens = 128  # App. G: max target length 128 tokens
        config.policy_a.label = "RLAIF"
        config.policy_a.model.name = ""  # set: path of the RLAIF policy
        config.policy_b.label = "SFT"
        config.policy_b.model.name = ""  # set: path of the SFT policy
        config.policy_a.temperature = 0.0  # evaluation sampling temperature: UNVERIFIED (not stated in RLAIF)
        config.policy_b.temperature = 0.0  # same (DPO §6.2 found T=0 best for its policies)
        config.judge.kind = "ai"  # RLAIF used human raters (§3.4); an AI judge as DPO's GPT-4 (App. C.2)
        config.judge.model.name = ""  # set: the labeler (RLAIF: PaLM 2 L, not public)
        config.judge.template = "summarize_detailed"  # RLAIF's best summarization prompt: Detailed + CoT 0-shot
        config.judge.cot = True  # Table 2: Detailed + CoT 0-shot, 78.0% alignment
        config.eval.length_feature = "ratio"  # App. J: logistic regression on len(A)/len(B) in characters
    return config
