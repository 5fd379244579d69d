"""Training throughput: corpusforge's trainer vs TRL's SFTTrainer, same model, LoRA, data, batch, loss.

Both fit LoRA r=8 (alpha 16) on q, k, v, gate, up, down of the last ten layers of an embedded model (20-29 of
SmolLM2-135M; 8-17 of Gemma 3 270M, ``benchmarks/training_gemma.py``),
batch 8, fp32 on the CPU, completion-only loss (the premise — the record's first role — is the prompt,
the rest the completion), the same records in each run, no drift control and no premise hold (TRL has
neither). Each runs in its own process; the figure is non-padding tokens per second over the timed steps, and peak RSS.
"""

from __future__ import annotations

import json

from .common import WORK, run_child

STEPS = 20
LORA = dict(rank=8, alpha=16.0, targets="q,k,v,gate,up,down", layers="20-29")

OURS = """
import json, sys
from corpusforge.train.loop import TrainConfig, train
cfg = TrainConfig(model=sys.argv[4], rank=8, alpha=16.0, targets="q,k,v,gate,up,down", layers=sys.argv[5], lr=3e-4,
                  steps=int(sys.argv[2]),
                  batch_size=8, warmup=2, use_controls=False, premise_weight=0.0, eval_every=0, checkpoint_every=0)
r = train(sys.argv[1], sys.argv[3], cfg, overwrite=True, echo=lambda s: None, progress=False)
print(json.dumps({"tokens_per_s": r.tokens_per_second, "tokens": r.tokens, "seconds": r.run.seconds}))
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
trainer.train()
print(json.dumps({"tokens_per_s": count.tokens / count.seconds, "tokens": count.tokens, "seconds": count.seconds}))
"""


def _last_json(stdout: str) -> dict:
    return json.loads([line for line in stdout.splitlines() if line.startswith("{")][-1])


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
    _, ours_peak, ours_out = run_child(OURS, *args, str(WORK / "ours-adapter"), model, LAYERS[model])
    _, trl_peak, trl_out = run_child(TRL, *args, str(WORK / "trl-out"), model, LAYERS[model])
    ours, trl = _last_json(ours_out), _last_json(trl_out)
    ratio = ours["tokens_per_s"] / trl["tokens_per_s"]
    return {
        "summary": (f"{model}: corpusforge train: {ours['tokens_per_s']:,.0f} non-padding tokens/s, peak RSS "
                    f"{ours_peak:,.0f} "
                    f"MiB; TRL SFTTrainer: {trl['tokens_per_s']:,.0f} tokens/s, peak RSS {trl_peak:,.0f} MiB; ratio "
                    f"{ratio:.2f}x (goal: >= 2x with peak memory no higher). {STEPS} steps of batch 8, LoRA r8 on "
                    f"q,k,v,gate,up,down of layers {LAYERS[model]}, fp32 CPU."),
        "table": {"corpusforge tokens/s": f"{ours['tokens_per_s']:,.0f}", "TRL tokens/s": f"{trl['tokens_per_s']:,.0f}",
                  "ratio": f"{ratio:.2f}x", "corpusforge peak RSS": f"{ours_peak:,.0f} MiB",
                  "TRL peak RSS": f"{trl_peak:,.0f} MiB", "tokens (ours / TRL)": f"{ours['tokens']} / {trl['tokens']}"},
        "ratio": ratio, "tokens_per_s": ours["tokens_per_s"], "baseline_tokens_per_s": trl["tokens_per_s"],
        "peak_rss_mib": ours_peak, "baseline_peak_rss_mib": trl_peak, "model": model, "layers": LAYERS[model],
    }
