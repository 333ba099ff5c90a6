"""AI preference labels (RLAIF, Lee et al. 2023, §2.1): label a pairwise preference file with an LLM labeler.

    python -m rlaif_jax.main --config=configs/rlaif_labels.py:tiny --workdir=/tmp/labels_tiny        # toy pairs, ~10 s
    python -m rlaif_jax.main --config=configs/rlaif_labels.py:smollm2 --workdir=/tmp/labels_smollm2 \
        --config.data.input_file=tests/data/fixtures/labeler_pairs.jsonl
    python -m rlaif_jax.main --config=configs/rlaif_labels.py:smollm2 --workdir=/tmp/labels_tldr \
        --config.data.source=summarize_from_feedback --config.data.input_file=openai/summarize_from_feedback

Writes WORKDIR/ai_labels.jsonl (prompt, chosen, rejected, soft "preference" = P(chosen preferred), both orders'
P("1"), P("2")); re-running the command labels only the rows not yet there. Distil the labels into a reward model
with `configs/reward_model.py:smollm2 --config.loss.type=soft_label --config.data.train_file=WORKDIR/ai_labels.jsonl`.
`tiny` labels toy letter pairs with a random-init model: it checks the wiring, its labels mean nothing. With
SmolLM2-135M as labeler, `experiments/labeler_alignment.py` measures how often its labels agree with human ones (on
the 12-pair fixture: near chance, with a strong position bias; see that script's docstring).
`paper` is the §4.1 summarisation setting (PaLM 2 L, "Detailed + CoT 0-shot"); PaLM 2 is not public: set the model.
"""

import ml_collections

from rlaif_jax import config_defaults


def get_config(arg: str = "tiny") -> ml_collections.ConfigDict:
    """arg: 'tiny' (toy pairs, random-init labeler), 'smollm2' (SmolLM2-135M-Instruct labels a JSONL file) or
    'paper' (RLAIF §3.2 / §4.1 / App. D labeler settings)."""
    if arg not in ("tiny", "smollm2", "paper"):
        raise ValueError(f"unknown argument {arg!r}; expected 'tiny', 'smollm2' or 'paper'")
    tiny = arg == "tiny"
    config = ml_collections.ConfigDict()
    config.job = "ai_labels"  # pipeline in rlaif_jax/pipelines
    config.model = config_defaults.model("tiny" if tiny else "smollm2")  # the labeler
    config.model.scan_layers = False  # inference only: per-layer weights decode faster on CPU
    config.mesh = config_defaults.mesh()
    config.data = ml_collections.ConfigDict(
        dict(
            source="toy" if tiny else "jsonl",  # 'toy', 'jsonl', 'summarize_from_feedback' or 'hh_rlhf'
            input_file="",  # pairwise JSONL (prompt|context, chosen/rejected | response_a/response_b[, task]) or hub id
            split="train",  # split of a hub dataset or local directory
            data_dir="",  # hh_rlhf on the hub: subset ('helpful-base', 'harmless-base'); '' = all
            output_file="",  # where the labels go; '' = WORKDIR/ai_labels.jsonl
            # Task of rows without a "task" column: 'summarize', 'helpful' or 'harmless' (tiny: the short helpful
            # prompt, which fits the tiny model's 512-byte context).
            task="helpful" if tiny else "summarize",
            confidence=(),  # keep only rows whose human labeler confidence (summarize_from_feedback, 1-9) is in this
            # set; () = every row
            toy_num_pairs=16,  # toy: pairs to label
            seed=0,  # toy: pair generation seed
        )
    )
    config.labeler = ml_collections.ConfigDict(
        dict(
            template="",  # '' = each task's default (summarize_detailed, helpful_base, harmless_base) or a name
            num_shots=0,  # few-shot exemplars (ours, hand-written) between the preamble and the sample
            cot=False,  # two-step chain of thought: decode a rationale greedily, then read "1"/"2"
            cot_max_new_tokens=16 if tiny else 128,  # rationale length cap (tokens)
            use_chat_template=False,  # prompt as a chat user turn, the ending opening the assistant turn
            batch_size=8,  # pairs per labeler call (x2 orders per forward / sampler batch)
        )
    )
    if arg == "paper":
        # RLAIF §3.2, §4.1, App. D: PaLM 2 L (instruction-tuned, not RL-trained) labels summarisation pairs.
        config.model.name = ""  # set: the labeler (PaLM 2 L in the paper; not public)
        config.data.source = "summarize_from_feedback"  # §3.1: OpenAI's TL;DR preference comparisons
        config.data.input_file = "openai/summarize_from_feedback"  # needs a network, or a local copy
        config.data.task = "summarize"  # §4.1: Detailed + CoT 0-shot for summarisation
        config.data.confidence = (1, 2, 8, 9)  # §3.2 fn. 4-5: the alignment set keeps high-confidence human labels
        config.labeler.template = "summarize_detailed"  # Table 2's best summarisation prompt (78.0% alignment)
        config.labeler.num_shots = 0  # Table 2: 0-shot is best with CoT
        config.labeler.cot = True  # §2.1.2, Table 2
        config.labeler.cot_max_new_tokens = 512  # App. D: rationales decoded greedily, at most 512 tokens
        config.labeler.use_chat_template = False  # the paper prompts with plain text
        # App. D: inputs up to 4096 tokens; the labeler's own context limit is what is checked here.
    return config
