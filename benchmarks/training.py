"""Training throughput: corpusforge's trainer vs TRL's SFTTrainer, same model, LoRA, data, batch, loss.

Both fit LoRA r=8 (alpha 16) on q, k, v, gate, up, down of the last ten layers of an embedded model (20-29 of
SmolLM2-135M; 8-17 of Gemma 3 270M, ``benchmarks/training_gemma.py``),
batch 8, fp32 on the CPU, completion-only loss (the premise — the record's first role — is the prompt,
the rest the completion), the same records in each run, no drift control and no premise hold (TRL has
neither). Each runs in its own process, ``PAIRS`` times, alternating; the figure is non-padding tokens per second over
the timed steps of its runs together (each run's beside it), and the highest peak RSS.

Each then runs again counting its steps' matrix-product work (``common.COUNTED``), per token. The ratio of
tokens/s is the ratio of work per token times the ratio of the rates the two did their work at (FLOPs over the
whole step's time): a goal above the work ratio asks our trainer to run the same kernels, from the same torch,
faster than TRL runs them.
"""

from __future__ import annotations

import json

from .common import COUNTED, WORK, run_child

STEPS = 20
PAIRS = 2   # timed runs of each trainer, alternating
LORA = dict(rank=8, alpha=16.0, targets="q,k,v,gate,up,down", layers="20-29")

OURS = """
import json, sys
import corpusforge.train.loop as loop
from corpusforge.train.loop import TrainConfig, train
""" + COUNTED + """
loop.run_step = counted(loop.run_step)
cfg = TrainConfig(model=sys.argv[4], rank=8, alpha=16.0, targets="q,k,v,gate,up,down", layers=sys.argv[5], lr=3e-4,
                  steps=int(sys.argv[2]),
                  batch_size=8, warmup=2, use_controls=False, premise_weight=0.0, eval_every=0, checkpoint_every=0)
r = train(sys.argv[1], sys.argv[3], cfg, overwrite=True, echo=lambda s: None, progress=False)
print(json.dumps({"tokens_per_s": r.tokens_per_second, "tokens": r.tokens, "seconds": r.run.seconds,
                  "flops": sum(flops)}))
"""

TRL = """
import json, sys, time
import torch
from datasets import Dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
from trl import SFTConfig, SFTTrainer
from corpusforge.validate import iter_records
from corpusforge.lm.embedded import embedded_model_folder
from corpusforge.lm.load import quiet_transformers
quiet_transformers()
""" + COUNTED + """
folder = str(embedded_model_folder(sys.argv[4]))
first, last = (int(x) for x in sys.argv[5].split("-"))
tok = AutoTokenizer.from_pretrained(folder)
tok.pad_token = tok.pad_token or tok.eos_token
rows = [{"prompt": r["segments"][0]["text"], "completion": r["text"][r["segments"][0]["end"]:]}
        for r in iter_records([sys.argv[1] + "/data/train.jsonl"])]
model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
lora = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["q_proj", "k_proj", "v_proj", "gate_proj",
                  "up_proj", "down_proj"], layers_to_transform=list(range(first, last + 1)), task_type="CAUSAL_LM")
cfg = SFTConfig(output_dir=sys.argv[3], max_steps=int(sys.argv[2]), per_device_train_batch_size=8, learning_rate=3e-4,
                bf16=False, fp16=False, use_cpu=True, report_to=[], save_strategy="no", logging_steps=1,
                completion_only_loss=True, max_length=128, packing=False, dataloader_num_workers=0,
                disable_tqdm=True, warmup_steps=2, seed=0)
class Count(TrainerCallback):
    tokens, start, seconds = 0, None, 0.0
    def on_step_begin(self, args, state, control, **kw):
        self.start = time.perf_counter()
    def on_step_end(self, args, state, control, **kw):
        self.seconds += time.perf_counter() - self.start
count = Count()
trainer = SFTTrainer(model=model, args=cfg, train_dataset=Dataset.from_list(rows), processing_class=tok,
                     peft_config=lora, callbacks=[count])
collate = trainer.data_collator
def counting(features):
    batch = collate(features)
    count.tokens += int(batch["attention_mask"].sum())
    return batch
trainer.data_collator = counting
trainer.training_step = counted(trainer.training_step)
trainer.train()
print(json.dumps({"tokens_per_s": count.tokens / count.seconds, "tokens": count.tokens, "seconds": count.seconds,
                  "flops": sum(flops)}))
"""


def _last_json(stdout: str) -> dict:
    return json.loads([line for line in stdout.splitlines() if line.startswith("{")][-1])


def _pooled(runs: list[dict]) -> dict:
    """Runs of one trainer as one: their tokens over their seconds (each run trains the same records)."""
    tokens, seconds = sum(r["tokens"] for r in runs), sum(r["seconds"] for r in runs)
    return {"tokens_per_s": tokens / seconds, "tokens": runs[0]["tokens"], "seconds": seconds / len(runs)}


#: each embedded model's last ten layers
LAYERS = {"smollm2-135m": "20-29", "gemma3-270m": "8-17"}


def run(model: str = "smollm2-135m") -> dict:
    from corpusforge.generate import GenerateConfig, generate
    from corpusforge.lm.embedded import embedded_model_folder

    WORK.mkdir(exist_ok=True)
    embedded_model_folder(model)  # convert once, outside the timings
    corpus = WORK / "train-corpus"
    generate(GenerateConfig(mix={"if_then.en": 1, "paradox_conclusion.en": 1}, n=2000, seed=0, overwrite=True,
                            progress=False), corpus)
    args = (str(corpus), str(STEPS))
    children = {"ours": (OURS, WORK / "ours-adapter"), "trl": (TRL, WORK / "trl-out")}
    runs: dict[str, list[dict]] = {"ours": [], "trl": []}
    peaks: dict[str, float] = {"ours": 0.0, "trl": 0.0}
    for _ in range(PAIRS):   # alternating, so that a slow spell of this shared machine falls on both
        for name, (code, out) in children.items():
            _, peak, stdout = run_child(code, *args, str(out), model, LAYERS[model])
            runs[name].append(_last_json(stdout))
            peaks[name] = max(peaks[name], peak)
    if any(r["flops"] for rs in runs.values() for r in rs):   # counting slows a step: never in a timed run
        raise RuntimeError("a timed training run counted its work")
    ours, trl = (_pooled(runs[name]) for name in ("ours", "trl"))
    ours_peak, trl_peak = peaks["ours"], peaks["trl"]
    ratio = ours["tokens_per_s"] / trl["tokens_per_s"]
    # the same runs again, counting each step's work: the same records, so the same work as the timed runs did
    ours_work, trl_work = (_last_json(run_child(code, *args, str(out), model, LAYERS[model], "count")[2])
                           for code, out in children.values())
    # per token: the two draw their 20 batches from the same records each in its own order
    per_token = {"ours": ours_work["flops"] / ours_work["tokens"], "trl": trl_work["flops"] / trl_work["tokens"]}
    work = per_token["trl"] / per_token["ours"]
    # the rate each trainer's counted work ran at in its timed runs: time ratio = work ratio x rate ratio
    ours_rate, trl_rate = ours_work["flops"] / ours["seconds"] / 1e9, trl_work["flops"] / trl["seconds"] / 1e9
    each = {name: " / ".join(f"{r['tokens_per_s']:,.0f}" for r in rs) for name, rs in runs.items()}
    return {
        "summary": (f"{model}: corpusforge train: {ours['tokens_per_s']:,.0f} non-padding tokens/s, peak RSS "
                    f"{ours_peak:,.0f} "
                    f"MiB; TRL SFTTrainer: {trl['tokens_per_s']:,.0f} tokens/s, peak RSS {trl_peak:,.0f} MiB; ratio "
                    f"{ratio:.2f}x (goal: >= 2x with peak memory no higher). {STEPS} steps of batch 8, LoRA r8 on "
                    f"q,k,v,gate,up,down of layers {LAYERS[model]}, fp32 CPU. Matrix-product work per token: TRL "
                    f"{per_token['trl'] / 1e6:,.0f} MFLOP, ours {per_token['ours'] / 1e6:,.0f} ({work:.2f}x less); "
                    f"the rate each did its work at: ours {ours_rate:.0f} GFLOP/s, TRL {trl_rate:.0f} "
                    f"({ours_rate / trl_rate:.2f}x): ratio = work ratio x rate ratio."),
        "table": {"corpusforge tokens/s": f"{ours['tokens_per_s']:,.0f} ({each['ours']})",
                  "TRL tokens/s": f"{trl['tokens_per_s']:,.0f} ({each['trl']})",
                  "ratio": f"{ratio:.2f}x", "corpusforge peak RSS": f"{ours_peak:,.0f} MiB",
                  "TRL peak RSS": f"{trl_peak:,.0f} MiB", "tokens (ours / TRL)": f"{ours['tokens']} / {trl['tokens']}",
                  "matrix-product work per token (MFLOP, ours / TRL)": f"{per_token['ours'] / 1e6:,.0f} / "
                                                                         f"{per_token['trl'] / 1e6:,.0f}",
                  "work per token: TRL / ours": f"{work:.2f}x",
                  "rate of the counted work (GFLOP/s, ours / TRL)": f"{ours_rate:.0f} / {trl_rate:.0f}"},
        "ratio": ratio, "tokens_per_s": ours["tokens_per_s"], "baseline_tokens_per_s": trl["tokens_per_s"],
        "peak_rss_mib": ours_peak, "baseline_peak_rss_mib": trl_peak, "model": model, "layers": LAYERS[model],
        "flops_per_token": per_token["ours"], "baseline_flops_per_token": per_token["trl"], "work_ratio": work,
        "rate_ratio": ours_rate / trl_rate,
    }
