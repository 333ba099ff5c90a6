"""ReST: Reinforced Self-Training (Gulcehre et al. 2023): Grow (sample M outputs per source at temperature 0.8 from the
current policy, add them to D, score once) and Improve (keep normalised reward > τ with τ rising, BC fine-tune from
the previous policy at a lower learning rate, while the validation reward improves).

    python -m rlaif_jax.main --config=configs/rest.py:tiny --workdir=/tmp/rest_toy                  # toy letters
    python -m rlaif_jax.main --config=configs/rest.py:tiny --workdir=/tmp/rest_mt --config.task=translation
    python -m rlaif_jax.main --config=configs/rest.py:tiny_t5 --workdir=/tmp/rest_t5               # T5 policy
    python -m rlaif_jax.main --config=configs/rest.py:smollm2 --workdir=/tmp/rest_sentiment       # SmolLM2, VADER

`tiny` first fine-tunes a random-init 2-layer model on D (2048 noisy demonstrations: BC, "G=0 I=0") into WORKDIR/sft,
then runs 2 Grow x 3 Improve steps. WORKDIR/rest.md has the reward per step: on the toy task the held-out gold
reward goes 0.58 (BC) -> 0.88 (G=1, I=3) -> 0.96 (G=2, I=3) at a KL of 3.5 nats to BC; with
`--config.task=translation` (the synthetic language of data/translation.py, chrF) 0.45 -> 0.90 (about 2 minutes on
2 CPU cores). `smollm2` runs ReST on SmolLM2-135M-Instruct's movie reviews with VADER as the reward (no D, no SFT);
its held-out VADER per Improve step is in WORKDIR/rest.md. Measured (G=1, 4 samples of each of the 64 train prompts,
16 SGD steps per Improve step; ~20 min on 2 shared CPU cores): test VADER 0.35 (start) -> 0.41 (I=0, τ 0, KL 1.6)
-> 0.61 (I=1, τ 0.7, KL 2.0), but the 16-prompt validation reward fell 0.44 -> 0.32 at I=1, so the stopping rule
kept the I=0 policy: with 16 prompts a split the rule is noisy.
`tiny_t5` runs the synthetic translation task with a random-init T5 encoder-decoder (BC, then ReST).
`paper` holds ReST's IWSLT 2014 De->En settings (§4, Table 2, App. A.3) with the paper's encoder-decoder shape
(random init, byte tokenizer in place of its sentencepiece vocabulary) on the `corpus` task; the paper's reward,
Metric X, is not public: chrF stands in. Set the corpus path.
Re-running the same command resumes (Grow files are read back, never re-sampled).
"""

import ml_collections

from rlaif_jax import config_defaults

PAPER_THRESHOLDS = [0.0, 0.7, 0.8, 0.9, 0.95, 0.99]  # §4: τ0 = 0 (all data), then rising


def get_config(arg: str = "tiny") -> ml_collections.ConfigDict:
    """arg: 'tiny' (toy letters or the synthetic translation task, random init), 'tiny_t5' (the synthetic translation
    task with a random-init T5 encoder-decoder policy), 'smollm2' (sentiment) or 'paper'."""
    if arg not in ("tiny", "tiny_t5", "smollm2", "paper"):
        raise ValueError(f"unknown argument {arg!r}; expected 'tiny', 'tiny_t5', 'smollm2' or 'paper'")
    t5 = arg == "tiny_t5"
    tiny = arg in ("tiny", "tiny_t5")
    config = ml_collections.ConfigDict()
    config.job = "rest"  # pipeline in rlaif_jax/pipelines
    config.seed = 0  # Grow g samples from fold_in(fold_in(key(seed), 100), g); evaluations use fixed draws
    config.task = (
        ("translation" if t5 else "toy") if tiny else ("sentiment" if arg == "smollm2" else "corpus")
    )  # 'toy', 'translation', 'corpus', 'sentiment'
    config.model = config_defaults.model("tiny" if tiny else "smollm2")
    config.mesh = config_defaults.mesh()
    config.data = ml_collections.ConfigDict(
        dict(
            num_sources=256 if tiny else 0,  # Grow sources (train prompts; 0 = all of the task's)
            num_original=512 if tiny else 0,  # rows of the original data D (toy / translation / corpus); 0 = none
            noise=0.5 if tiny else 0.0,  # toy / translation: probability that a D letter / word is wrong
            num_eval=128 if tiny else 16,  # validation and test prompts (each)
            seed=0,  # D's sampling seed, and the Improve batch order (batch of step t = f(seed, t))
            max_prompt_length=32 if tiny else 64,  # prompts are left-padded to this many tokens
            max_new_tokens=24 if tiny else 48,  # sample length cap (toy answers take 7, translations 21)
            use_chat_template=not tiny,  # prompts as a chat user turn
            # task 'corpus' only: a published corpus in the HF `translation` schema (data/translation.py)
            corpus="",  # hub name (e.g. IWSLT/iwslt2017) or a local JSON(L) / parquet file or directory
            corpus_loader="iwslt2017",  # 'iwslt2017' or 'wmt' (they pick the hub config from the languages)
            source_lang="de",  # key of the source text in `translation`
            target_lang="en",  # key of the reference
            train_split="train",  # Grow sources and D
            valid_split="validation",  # D_eval of the stopping rule
            test_split="test",  # the report
            prompt_template="Translate from German to English:\n{source}",  # prompt of one source text
        )
    )
    config.reward = ml_collections.ConfigDict(
        dict(
            metric="chrf",  # translation / corpus: 'chrf' or 'bleu' (sacrebleu, sentence level, / 100)
            normalization="range",  # 'range' (clip((r - low) / (high - low))) or 'minmax' (over each Grow dataset)
            low=-1.0 if arg == "smollm2" else 0.0,  # 'range': the reward's minimum (VADER: -1)
            high=1.0,  # 'range': the reward's maximum
        )
    )
    config.grow = ml_collections.ConfigDict(
        dict(
            num_steps=2 if tiny else 1,  # G: Grow steps
            num_samples=8 if tiny else 4,  # M: samples per source
            temperature=0.8,  # §4 / App. A.3: sampling temperature of Grow
            sources_per_call=256 if tiny else 16,  # sources per sampler call (memory bound)
        )
    )
    config.improve = ml_collections.ConfigDict(
        dict(
            num_steps=4 if tiny else 3,  # I: Improve steps per Grow step (τ_0 .. τ_{I-1})
            thresholds=list(PAPER_THRESHOLDS),  # τ of Improve step i (the last one past the end)
            sgd_steps=60 if tiny else 16,  # optimizer steps per Improve step
            lr_decay=0.5,  # Improve step i's learning rate = optimizer.learning_rate x lr_decay^i (UNVERIFIED values)
            stop_when_no_gain=True,  # Alg. 1: stop the Improve loop when the validation reward does not rise
            threshold_above_mean=tiny,  # Alg. 1: skip τ <= the mean normalised reward of D_g (False: §4's schedule)
        )
    )
    config.eval = ml_collections.ConfigDict(
        dict(temperature=1.0)  # sampling temperature of the validation / test reward (1: the KL is a true estimate)
    )
    config.train = ml_collections.ConfigDict(
        dict(
            batch_size=32 if tiny else 8,  # examples per Improve optimizer step (global)
            accumulation_steps=1,  # micro-batches per step
            log_every=10 if tiny else 4,  # metrics.jsonl / TensorBoard interval (per Improve step)
            stop_at_step=0,  # stop after this many optimizer steps over all Improve steps (as if preempted); 0 = never
            max_nonfinite_steps=3,  # stop with an error after more non-finite steps than this
        )
    )
    config.optimizer = config_defaults.optimizer(learning_rate=1e-3 if tiny else 1e-5, schedule="constant")
    config.checkpoint = config_defaults.checkpoint(every_steps=1000, keep=1)  # one save per Improve step (its end)
    config.sft_first = tiny  # BC on D into WORKDIR/sft first (the pipeline points config.sft at D)
    config.sft = config_defaults.load_config_file("sft", "tiny" if tiny else "smollm2")  # the BC stage
    config.sft.export_hf = True  # ReST loads the BC result from WORKDIR/sft/hf_model
    config.sft.data.max_length = 64 if tiny else 512  # prompt + translation + EOS fits (toy needs 16)
    config.sft.train.num_steps = 300 if tiny else 100  # BC steps (noise-0.5 toy: loss ~1.4; translation ~0.8)
    if arg == "paper":
        # ReST §4 / Table 2 / App. A.3, IWSLT 2014 De->En, with the paper's encoder-decoder shape (set below).
        config.data.corpus = ""  # set: IWSLT 2014 De-En in the HF `translation` schema (hub name or local files)
        config.data.num_sources = 0  # all training sources
        config.data.num_original = 160_000  # all of D: IWSLT14 De-En has ~160k train pairs (UNVERIFIED, not read)
        config.data.num_eval = 7466  # Table 2: evaluation samples
        config.data.max_new_tokens = 128  # App. A.3: maximum decode length 128
        config.data.use_chat_template = False  # plain prompt -> translation
        config.reward.metric = "chrf"  # the paper's reward is Metric X (normalised to [0, 1]): not public
        config.grow.num_steps = 1  # §4: 1 Grow step (main); Table 1 / Fig. 4 use 2
        config.grow.num_samples = 100  # Table 2: 100 candidates per source (IWSLT); WMT 25, Web Domain 1000
        config.improve.num_steps = 5  # Fig. 3: 5 Improve steps on IWSLT (WMT 4, Web Domain 2)
        config.improve.sgd_steps = 500_000  # App. A.3 (the paper keeps the best checkpoint by RM score: not done)
        config.improve.lr_decay = 0.5  # UNVERIFIED: "a lower learning rate" each step (§3), values not stated
        config.optimizer.learning_rate = 1e-4  # UNVERIFIED (optimizer and base LR not stated)
        config.train.batch_size = 256  # UNVERIFIED (batch size not stated)
        config.sft_first = True  # BC on D = "BC G=0 I=0" (§2, §4)
        config.sft.data.max_length = 384  # prompt + 128 decoded tokens
        config.sft.train.num_steps = 500_000  # UNVERIFIED: BC steps (App. A.3 states 500k per Improve step)
    if t5 or arg == "paper":
        # An encoder-decoder policy, random-init, trained by BC then ReST (the SFT stage builds the same model).
        for block in (config.model, config.sft.model):
            block.name = "tiny_t5"
            block.tiny_t5 = dict(config_defaults.TINY_T5)
    if arg == "paper":
        # App. A.3's IWSLT "Tiny" model: 6+6 layers, 4 heads, d_model 512, FF 1024. Its sentencepiece-32k vocabulary
        # is not packaged: the byte tokenizer stands in (UNVERIFIED substitution; longer sequences).
        for block in (config.model, config.sft.model):
            block.tiny_t5.update(d_model=512, d_kv=128, d_ff=1024, num_heads=4, num_layers=6, num_decoder_layers=6)
        config.data.max_prompt_length = 512  # bytes of a source sentence (UNVERIFIED with the byte tokenizer)
    if t5:
        config.sft.data.max_length = 48  # a source, and a translation + EOS, each within 48 bytes
    return config
