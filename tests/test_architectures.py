"""Any causal LM: tiny random-weight models of many architectures, built from their transformers configs here
(no downloads), each trained a few steps with each preset (the adapter loads back with plain peft) and reported on
with attention+mlp.

Expected anatomy per architecture is written out below, so a resolver that finds the wrong modules fails.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from corpusforge.errors import TrainError
from corpusforge.lm.arch import check_head, describe
from corpusforge.lm.device import Machine, choose
from corpusforge.lm.load import load_model
from corpusforge.shift.inside import weight_map
from corpusforge.shift.report import build_report
from corpusforge.train.loop import TrainConfig, train

from .conftest import ROOT, SAMPLE
from .tiny import make_tiny_tokenizer

H, LAYERS = 64, 4


def _configs(vocab: int) -> dict:
    import transformers as T

    ids = dict(pad_token_id=0, bos_token_id=0, eos_token_id=0)
    common = dict(vocab_size=vocab, hidden_size=H, num_hidden_layers=LAYERS, num_attention_heads=4,
                  intermediate_size=2 * H, max_position_embeddings=256, **ids)
    gpt = dict(vocab_size=vocab, n_embd=H, n_layer=LAYERS, n_head=4, **ids)
    return {
        "llama": lambda: T.LlamaConfig(**common, num_key_value_heads=2),
        "mistral": lambda: T.MistralConfig(**common, num_key_value_heads=2),
        "qwen2": lambda: T.Qwen2Config(**common, num_key_value_heads=2),
        "qwen3": lambda: T.Qwen3Config(**common, num_key_value_heads=2, head_dim=16),
        "gemma2": lambda: T.Gemma2Config(**common, num_key_value_heads=2, head_dim=16),
        "gemma3": lambda: T.Gemma3TextConfig(**common, num_key_value_heads=2, head_dim=16),
        "phi": lambda: T.PhiConfig(**common),
        "phi3": lambda: T.Phi3Config(**common, num_key_value_heads=2),
        "gpt2": lambda: T.GPT2Config(**gpt, n_positions=256),
        "gpt_neox": lambda: T.GPTNeoXConfig(**common),
        "opt": lambda: T.OPTConfig(vocab_size=vocab, hidden_size=H, num_hidden_layers=LAYERS, num_attention_heads=4,
                                   ffn_dim=2 * H, max_position_embeddings=256, word_embed_proj_dim=H, **ids),
        "falcon": lambda: T.FalconConfig(vocab_size=vocab, hidden_size=H, num_hidden_layers=LAYERS,
                                         num_attention_heads=4, **ids),
        "olmo2": lambda: T.Olmo2Config(**common, num_key_value_heads=2),
        "granite": lambda: T.GraniteConfig(**common, num_key_value_heads=2, logits_scaling=4.0),
        "stablelm": lambda: T.StableLmConfig(**common, num_key_value_heads=2),
        # not in the list: fused query_key_value, ALiBi, an embedding layer norm, no SDPA path
        "bloom": lambda: T.BloomConfig(vocab_size=vocab, hidden_size=H, n_layer=LAYERS, n_head=4, **ids),
        # nor this one: a logit scale after the head
        "cohere": lambda: T.CohereConfig(**common, num_key_value_heads=2),
        # mixtures of experts: fused 3-D expert parameters and a router (issue 26)
        "mixtral": lambda: T.MixtralConfig(**common, num_key_value_heads=2, num_local_experts=4,
                                           num_experts_per_tok=2),
        "qwen2_moe": lambda: T.Qwen2MoeConfig(**common, num_key_value_heads=2, num_experts=4, num_experts_per_tok=2,
                                              moe_intermediate_size=H, shared_expert_intermediate_size=H),
        "qwen3_moe": lambda: T.Qwen3MoeConfig(**common, num_key_value_heads=2, head_dim=16, num_experts=4,
                                              num_experts_per_tok=2, moe_intermediate_size=H),
        "olmoe": lambda: T.OlmoeConfig(**common, num_key_value_heads=2, num_experts=4, num_experts_per_tok=2),
    }


#: what the attention and MLP presets must resolve to in every layer
EXPECTED = {
    "llama": ({"q_proj", "k_proj", "v_proj", "o_proj"}, {"gate_proj", "up_proj", "down_proj"}),
    "phi": ({"q_proj", "k_proj", "v_proj", "dense"}, {"fc1", "fc2"}),
    "phi3": ({"qkv_proj", "o_proj"}, {"gate_up_proj", "down_proj"}),
    "gpt2": ({"c_attn", "c_proj"}, {"c_fc", "c_proj"}),
    "gpt_neox": ({"query_key_value", "dense"}, {"dense_h_to_4h", "dense_4h_to_h"}),
    "opt": ({"q_proj", "k_proj", "v_proj", "out_proj"}, {"fc1", "fc2"}),
    "falcon": ({"query_key_value", "dense"}, {"dense_h_to_4h", "dense_4h_to_h"}),
    "bloom": ({"query_key_value", "dense"}, {"dense_h_to_4h", "dense_4h_to_h"}),
}
for _name in ("mistral", "qwen2", "qwen3", "gemma2", "gemma3", "olmo2", "granite", "stablelm", "cohere"):
    EXPECTED[_name] = EXPECTED["llama"]
EXPERTS = {"experts.gate_up_proj", "experts.down_proj"}   # one fused parameter each, every expert in it
for _name in ("mixtral", "qwen3_moe", "olmoe"):
    EXPECTED[_name] = (EXPECTED["llama"][0], EXPERTS)
EXPECTED["qwen2_moe"] = (EXPECTED["llama"][0], EXPERTS | {"gate_proj", "up_proj", "down_proj"})  # + a shared expert
#: the routers the presets leave alone, where they are linear maps (Mixtral's and the others' are a class of
#: their own, which no LoRA adapts)
ROUTERS = {"qwen2_moe": {"shared_expert_gate"}}

ARCHITECTURES = sorted(EXPECTED)


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> Path:
    return make_tiny_tokenizer(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="module")
def models(tmp_path_factory, tokenizer_dir):
    """name → a saved tiny model folder, built on first use."""
    import shutil

    import torch
    import transformers as T

    tok = T.AutoTokenizer.from_pretrained(tokenizer_dir)
    builders = _configs(len(tok))
    root = tmp_path_factory.mktemp("archs")
    made: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in made:
            folder = root / name
            torch.manual_seed(0)
            T.AutoModelForCausalLM.from_config(builders[name]()).save_pretrained(folder)
            for f in tokenizer_dir.iterdir():
                shutil.copy(f, folder / f.name)
            made[name] = folder
        return made[name]

    return get


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_the_anatomy_is_found_from_the_structure(models, name):
    import torch

    model = load_model(str(models(name))).model
    arch = describe(model)
    assert arch.num_layers == LAYERS
    attention, mlp = EXPECTED[name]
    for layer in range(LAYERS):
        assert {p.short for p in arch.projections if p.layer == layer and p.block == "attention"} == attention
        assert {p.short for p in arch.projections if p.layer == layer and p.block == "mlp"} == mlp
    assert set(arch.peft_defaults) <= {p.short for p in arch.projections}   # peft's own table agrees
    assert {p.short for p in arch.projections if p.block == "router"} == ROUTERS.get(name, set())
    assert all(p.experts == 4 for p in arch.projections if p.kind == "Experts")
    head_ok, lens_ok = check_head(model, arch, torch.tensor([[1, 5, 7, 9, 11, 3]]))
    assert head_ok and lens_ok


def test_unknown_modules_list_the_real_ones(models):
    from corpusforge.train.lora import LoraSettings, resolve

    model = load_model(str(models("gpt2"))).model
    with pytest.raises(TrainError) as info:
        resolve(LoraSettings(targets="q_proj,v"), model)
    assert "attention.c_attn" in str(info.value) and "mlp.c_fc" in str(info.value)
    both = resolve(LoraSettings(targets="c_proj", layers=[0]), model).projections
    assert {p.label for p in both} == {"attention.c_proj", "mlp.c_proj"}   # a short name in two blocks: both
    only = resolve(LoraSettings(targets="mlp.c_proj", layers=[0]), model).projections
    assert [p.label for p in only] == ["mlp.c_proj"]


@pytest.mark.parametrize("name", ARCHITECTURES)
@pytest.mark.parametrize("preset", ["attention", "mlp", "attention+mlp"])
def test_each_architecture_trains_with_each_preset_and_reports(models, tmp_path, name, preset):
    import jsonschema
    from peft import PeftModel

    folder = models(name)
    adapter = tmp_path / "adapter"
    result = train(SAMPLE / "corpus", adapter, TrainConfig(model=str(folder), targets=preset, layers="all",
                                                           steps=2, batch_size=4, control_batch=2, eval_every=0,
                                                           checkpoint_every=0, warmup=0, lr=5e-3),
                   echo=lambda s: None)
    run = json.loads((adapter / "run.json").read_text())
    attention, mlp = EXPECTED[name]
    want = ({f"attention.{m}" for m in attention} if preset != "mlp" else set()) | (
        {f"mlp.{m}" for m in mlp} if preset != "attention" else set())
    assert set(run["targets_resolved"]) == want and result.steps == 2
    assert run["device"] == "cpu" and run["dtype"] == "float32"
    peft_model = PeftModel.from_pretrained(load_model(str(folder)).model, str(adapter))   # plain peft loads it
    assert sum("lora_A" in n for n, _ in peft_model.named_parameters()) == len(want) * LAYERS
    blocks = {"attention", "mlp"} if preset == "attention+mlp" else {preset}
    if preset != "attention+mlp":
        # a single block's adapter: where it sits; the whole report runs on attention+mlp, whose modules are the
        # union of the two (every section's code path on this architecture, at half the suite's time)
        assert {w.block for w in weight_map(peft_model)} == blocks
        return
    report = build_report(adapter, model=str(folder), corpus=SAMPLE / "corpus", max_probes=2, max_controls=2,
                          echo=lambda s: None).model_dump(mode="json")      # as report.json holds it
    schema = json.loads((ROOT / "schemas" / "report.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema).validate(json.loads(json.dumps(report)))
    assert {w["block"] for w in report["weight_map"]} == blocks
    assert report["attention"]["available"]
    lens = report["logit_lens"][0]
    assert len(lens["after"]["p"]) == LAYERS and lens["verified"]


def test_a_mixture_of_experts_adapts_every_expert_and_leaves_the_router_alone(models, tmp_path):
    """Qwen2-MoE has all three: fused experts (a 3-D parameter each), a shared expert of plain linear maps, and
    a router that is a linear map. attention+mlp adapts the experts through peft's target_parameters — one
    rank-r LoRA per expert, each trained — and the shared expert, never the routers; dropout, which peft cannot
    apply to a fused parameter, is refused with the reason."""
    import torch
    from peft import PeftModel

    from corpusforge.lm.generation import lora_delta, lora_layers

    folder = models("qwen2_moe")
    adapter = tmp_path / "adapter"
    train(SAMPLE / "corpus", adapter, TrainConfig(model=str(folder), layers="all", steps=3, batch_size=8,
                                                  eval_every=0, checkpoint_every=0, warmup=0, lr=1e-2),
          echo=lambda s: None)
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert sorted(config["target_parameters"]) == sorted(f"model.layers.{i}.mlp.experts.{p}" for i in range(LAYERS)
                                                        for p in ("gate_up_proj", "down_proj"))
    assert not any("gate" in t and "gate_proj" not in t for t in config["target_modules"])   # no router
    base = load_model(str(folder)).model
    routers = {n: p.detach().clone() for n, p in base.named_parameters() if "gate.weight" in n or "expert_gate" in n}
    peft = PeftModel.from_pretrained(base, str(adapter))                   # plain peft loads it
    names = {name for name, _ in lora_layers(peft)}
    assert {f"model.layers.0.mlp.experts.{p}" for p in ("gate_up_proj", "down_proj")} <= names
    assert not any(n.endswith(("mlp.gate", "shared_expert_gate")) for n in names)
    for name, module in lora_layers(peft):
        if name.endswith("experts.gate_up_proj"):
            delta = lora_delta(module, "default")
            assert delta.shape == (4, 2 * H, H)                          # (experts, out, in)
            assert all(float(delta[e].norm()) > 0 for e in range(4)), name   # every expert's LoRA trained
    after = {n.removeprefix("base_model.model."): p for n, p in peft.named_parameters()}
    assert all(torch.equal(after[n], p) for n, p in routers.items()) and routers
    with pytest.raises(TrainError, match="without dropout"):
        train(SAMPLE / "corpus", tmp_path / "dropped", TrainConfig(model=str(folder), steps=1, dropout=0.1,
                                                                   eval_every=0), echo=lambda s: None)


#: where each model keeps its decoder layers and its final norm, written out here (not found by corpusforge's
#: resolver), for the test's own logit lens; gemma2 also soft-caps its logits
LENS_ANATOMY = {"llama": ("model.layers", "model.norm"), "gpt2": ("transformer.h", "transformer.ln_f"),
                "gemma2": ("model.layers", "model.norm"), "falcon": ("transformer.h", "transformer.ln_f")}


def _own_lens(model, ids, name: str, tid: int, *, adapter: bool) -> tuple[list[float], list[int], object]:
    """The test's logit lens, computed independently of inside.logit_lens: forward hooks keep each decoder
    layer's output (the residual stream before the final norm), then the final norm and the head (and
    Gemma 2's soft cap) turn each into logits at the last position. Returns the target's probability and rank
    per layer, and the model's own last-position logits."""
    import contextlib

    import torch

    layers_path, norm_path = LENS_ANATOMY[name]
    base = model.get_base_model()
    kept: dict[int, object] = {}
    hooks = [layer.register_forward_hook(lambda m, a, out, i=i: kept.__setitem__(i, out[0] if isinstance(
        out, tuple) else out)) for i, layer in enumerate(base.get_submodule(layers_path))]
    try:
        with torch.no_grad(), (contextlib.nullcontext() if adapter else model.disable_adapter()):
            own = model(input_ids=torch.tensor([ids])).logits[0, -1].float()
            probs, ranks = [], []
            for i in range(len(kept)):
                logits = base.lm_head(base.get_submodule(norm_path)(kept[i]))[0, -1].float()
                cap = getattr(base.config, "final_logit_softcapping", None)
                if cap:
                    logits = torch.tanh(logits / cap) * cap
                logp = torch.log_softmax(logits, dim=-1)
                probs.append(float(logp[tid].exp()))
                ranks.append(int((logp > logp[tid]).sum()) + 1)
    finally:
        for hook in hooks:
            hook.remove()
    return probs, ranks, (logits, own)


@pytest.mark.parametrize("name", ["llama", "gpt2", "gemma2", "falcon"])
def test_the_lens_matches_an_independent_lens_layer_by_layer(models, tmp_path, name):
    """Every layer of inside.logit_lens, before and after, equals the test's own lens (hooks on the decoder
    layers, then the model's final norm and head): a lens that takes the wrong layer, normalises a hidden state
    twice (a bug once did at the last layer), skips the norm or the soft cap, or swaps before and after fails.
    The test's lens at the last layer is checked against the model's own output first."""
    import torch
    from peft import PeftModel

    from corpusforge.shift.inside import logit_lens
    from corpusforge.shift.passes import encode
    from corpusforge.shift.probes import Probe

    adapter = tmp_path / "a"
    train(SAMPLE / "corpus", adapter, TrainConfig(model=str(models(name)), steps=2, batch_size=4, eval_every=0,
                                                  checkpoint_every=0, use_controls=False, layers="all", lr=5e-3),
          echo=lambda s: None)
    lm = load_model(str(models(name)))
    model = PeftModel.from_pretrained(lm.model, str(adapter)).eval()
    probe = Probe(prompt="If the river freezes,", targets=[" then"])
    lens = logit_lens(model, lm.tokenizer, probe, " then", describe(model))
    ids, tid = encode(lm.tokenizer, probe.prompt), encode(lm.tokenizer, " then")[0]
    for label, active in (("before", False), ("after", True)):
        probs, ranks, (last, own) = _own_lens(model, ids, name, tid, adapter=active)
        assert torch.allclose(last, own, atol=1e-4), f"{name}: the test's own lens misses the model's output"
        assert len(getattr(lens, label).p) == len(probs) == LAYERS
        assert getattr(lens, label).p == pytest.approx(probs, rel=1e-4, abs=1e-7), label
        assert getattr(lens, label).rank == ranks, label
    assert lens.before.p != pytest.approx(lens.after.p, rel=1e-3)   # the adapter moved something
    assert len(set(lens.after.p)) == LAYERS                                 # every layer says something else


def test_device_and_dtype_choices_on_every_kind_of_machine():
    """The GPU branches of the choice, described to it (the GPU check script runs them for real)."""
    cpu, gpu, old_gpu, mac = Machine(), Machine(cuda=True, cuda_bf16=True, cuda_count=2), \
        Machine(cuda=True, cuda_bf16=False, cuda_count=1), Machine(mps=True)
    assert (choose("auto", "auto", cpu).device, choose("auto", "auto", cpu).dtype) == ("cpu", "float32")
    assert (choose("auto", "auto", gpu).device, choose("auto", "auto", gpu).dtype) == ("cuda", "bfloat16")
    assert choose("auto", "auto", old_gpu).dtype == "float32"
    assert choose("auto", "auto", mac).device == "mps" and choose("auto", "auto", mac).dtype == "float32"
    assert choose("cuda:1", "float16", gpu).device == "cuda:1"
    for device, dtype, machine, words in [("cuda", "auto", cpu, "no CUDA"), ("cuda:2", "auto", gpu, "2 CUDA"),
                                          ("mps", "auto", cpu, "MPS"), ("cuda", "bfloat16", old_gpu, "bf16"),
                                          ("cpu", "float16", cpu, "float16"), ("tpu", "auto", cpu, "--device"),
                                          ("cpu", "int8", cpu, "--dtype")]:
        with pytest.raises(TrainError, match=words):
            choose(device, dtype, machine)
    assert any("slower" in n for n in choose("cpu", "bfloat16", cpu).notes)


def test_bf16_on_the_cpu_and_gradient_checkpointing(models, tmp_path):
    import torch
    from safetensors.torch import load_file

    out = tmp_path / "bf16"
    train(SAMPLE / "corpus", out, TrainConfig(model=str(models("llama")), steps=2, batch_size=4, eval_every=0,
                                              checkpoint_every=0, dtype="bfloat16", gradient_checkpointing=True,
                                              use_controls=False), echo=lambda s: None)
    run = json.loads((out / "run.json").read_text())
    assert run["dtype"] == "bfloat16" and run["gradient_checkpointing"]
    weights = load_file(str(out / "adapter_model.safetensors"))
    assert all(t.dtype == torch.float32 for t in weights.values())   # LoRA itself stays float32
    assert any(float(t.abs().sum()) > 0 for k, t in weights.items() if "lora_B" in k)   # and it learnt


def test_four_bit_needs_a_gpu(models, tmp_path):
    with pytest.raises(TrainError, match="CUDA GPU"):
        train(SAMPLE / "corpus", tmp_path / "q", TrainConfig(model=str(models("llama")), steps=1,
                                                             load_in_4bit=True), echo=lambda s: None)


def test_dry_run_prints_the_resolution_layer_by_layer(run, models):
    result = run("train", "--model", models("gpt2"), "--targets", "attention", "--layers", "last:2", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "layer   2: attention.c_attn" in result.output and "layer   3:" in result.output
    assert "layer   1:" not in result.output
    per_layer = 8 * (64 + 192) + 8 * (64 + 64)          # c_attn 64→192, c_proj 64→64, rank 8
    assert f"{2 * per_layer:,} trainable parameters" in result.output
    assert "peft's default targets for gpt2 (c_attn) are among" in result.output


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_a_pass_entered_at_a_layer_ends_as_the_full_pass(models, name):
    """Training starts the controls' and premises' passes at the first adapted layer, from inputs kept or
    shared (``lm.arch.entered_at``): on every architecture, whatever it adds to its embeddings (GPT-2's
    positions, Gemma's scale, Bloom's norm), a pass entered with the inputs the full pass gave that layer must
    end where the full pass ends — and entering with other inputs must not."""
    import torch

    from corpusforge.lm.arch import check_entry, decoder_layers, entered_at, layer_input

    lm = load_model(str(models(name)))
    arch = describe(lm.model)
    ids = torch.tensor([lm.tokenizer("If the river freezes, then", add_special_tokens=False).input_ids])
    assert check_entry(lm.model, arch, 2, ids)
    body = lm.model.base_model
    with torch.no_grad():
        with layer_input(lm.model, arch, 2) as seen:
            full = body(input_ids=ids, use_cache=False).last_hidden_state
        with entered_at(lm.model, arch, 2, seen["hidden"].flip(1)):
            other = body(input_ids=ids, use_cache=False).last_hidden_state
    assert not torch.allclose(other, full, atol=1e-3)
    assert len(decoder_layers(lm.model)[1]) == LAYERS      # the stack is whole again afterwards


@pytest.mark.parametrize("kind", ["gemma2", "gemma3", "qwen2"])
def test_an_entered_pass_keeps_each_layers_own_mask(tokenizer_dir, kind):
    """Gemma 2/3 and Qwen 2 pick each layer's attention mask (sliding window or full) — Gemma 3 also its rotary
    embedding — by the layer's place in the loop over the stack. Entered at an odd layer of alternating layers,
    with a window of 2 on a longer prompt, the pass must still end as the full pass does: the per-layer lists
    are cut with the stack."""
    import torch
    import transformers as T

    from corpusforge.lm.arch import check_entry

    tok = T.AutoTokenizer.from_pretrained(tokenizer_dir)
    common = dict(vocab_size=len(tok), hidden_size=H, num_hidden_layers=4, num_attention_heads=4,
                  num_key_value_heads=2, intermediate_size=2 * H, max_position_embeddings=256, sliding_window=2,
                  layer_types=["sliding_attention", "full_attention"] * 2, pad_token_id=0)
    config = {"gemma2": lambda: T.Gemma2Config(**common, head_dim=16),
              "gemma3": lambda: T.Gemma3TextConfig(**common, head_dim=16),
              "qwen2": lambda: T.Qwen2Config(**common, use_sliding_window=True)}[kind]()
    torch.manual_seed(0)
    model = T.AutoModelForCausalLM.from_config(config).eval()
    arch = describe(model)
    ids = torch.tensor([tok("A long prompt, longer than the window of two, with a clause or two.",
                            add_special_tokens=False).input_ids])
    assert all(check_entry(model, arch, layer, ids) for layer in (1, 2, 3))
    assert model.config.layer_types == ["sliding_attention", "full_attention"] * 2   # restored


@pytest.mark.parametrize("name", ["llama", "gpt2", "gpt_neox", "falcon", "phi3"])
def test_batched_continuations_equal_one_prompt_at_a_time(models, name):
    """The report continues its probes in one left-padded batch; padding must not change what is written,
    whatever the model's position scheme (rotary, learned absolute, ALiBi-free Falcon, fused Phi-3)."""
    import torch

    from corpusforge.lm.generation import continue_ids
    from corpusforge.shift.passes import encode

    lm = load_model(str(models(name)))
    prompts = ["If the river freezes,", "Смысл — это", "A long prompt that is much longer than the others, and yet"]
    id_lists = [encode(lm.tokenizer, p) for p in prompts]
    one_by_one = []
    for ids in id_lists:
        out = lm.model.generate(input_ids=torch.tensor([ids]), max_new_tokens=12, do_sample=False,
                                pad_token_id=lm.tokenizer.pad_token_id or lm.tokenizer.eos_token_id)
        one_by_one.append(lm.tokenizer.decode(out[0, len(ids):], skip_special_tokens=True))
    for batch_size in (64, 2):
        new = continue_ids(lm.model, lm.tokenizer, id_lists, max_new_tokens=12, batch_size=batch_size)
        assert [lm.tokenizer.decode(ids, skip_special_tokens=True) for ids in new] == one_by_one
    assert len(set(one_by_one)) > 1   # the prompts were continued, each in its own way


@pytest.mark.parametrize(("name", "dora", "mixes"), [("llama", False, True), ("gpt2", False, True),
                                                     ("gpt_neox", False, True), ("falcon", False, True),
                                                     ("phi3", False, True), ("gemma2", False, True),
                                                     ("opt", False, False), ("llama", True, False)])
def test_before_and_after_in_one_batch_equal_each_alone(models, name, dora, mixes):
    """The report writes every continuation — adapter off and on, greedy and sampled — in one generate call,
    through peft's mixed-adapter rows, or in a call per side where peft cannot mix (OPT flattens its MLP's
    input; DoRA). Either way each greedy text must be what the prompt gives alone at that scale, and a sampled
    ask's text must depend on the ask alone, with before and after sharing their draws."""
    import torch
    from peft import LoraConfig, get_peft_model

    from corpusforge.lm.generation import Ask, _can_mix, adapter_scale, continue_asks
    from corpusforge.shift.passes import encode
    from corpusforge.shift.structure import before_after

    lm = load_model(str(models(name)))
    tok = lm.tokenizer
    torch.manual_seed(0)
    model = get_peft_model(lm.model, LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False,
                                                use_dora=dora)).eval()
    assert _can_mix(model) is mixes
    ids = [encode(tok, p) for p in ["If the river freezes,", "Смысл — это",
                                    "A long prompt that is much longer than the others, and yet"]]
    texts = before_after(model, tok, {"greedy": (ids, 10, False), "sampled": (ids, 10, True)})
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    for label, scale in (("before", 0.0), ("after", 1.0)):
        with adapter_scale(model, scale), torch.no_grad():
            alone = [tok.decode(model.generate(input_ids=torch.tensor([i]), max_new_tokens=10, do_sample=False,
                                               pad_token_id=pad)[0, len(i):], skip_special_tokens=True) for i in ids]
        assert texts["greedy"][label] == alone
    assert texts["greedy"]["before"] != texts["greedy"]["after"]        # the adapter changed what is written
    assert texts["sampled"]["before"] != texts["greedy"]["before"]      # and the samples are samples
    with adapter_scale(model, 0.0):   # an adapter that changes nothing writes the same samples
        still = before_after(model, tok, {"sampled": (ids, 10, True)})["sampled"]
    assert still["before"] == still["after"] == texts["sampled"]["before"]
    ask = Ask(ids[1], 10, sample=True, adapter=True, key="k")
    others = [Ask(i, 6, sample=s, adapter=a, key=f"o{n}") for n, (i, s, a) in
              enumerate([(ids[0], True, False), (ids[2], False, True), (ids[0], True, True)])]
    assert continue_asks(model, tok, [ask]) == continue_asks(model, tok, [*others, ask])[-1:]


@pytest.mark.parametrize("name", ["llama", "gpt2", "gpt_neox", "falcon", "gemma2", "granite", "cohere"])
def test_batched_scores_equal_one_sequence_at_a_time(models, name):
    """The report scores probes and controls in right-padded batches, its head only at the positions scored
    (``measuring``; Gemma 2 soft-caps its logits, Granite scales them); each score must be what the sequence
    alone gives through the model's own forward pass (log p of the whole continuation, its first token's rank,
    greedy or not)."""
    from corpusforge.shift.passes import _KEPT, encode, measuring, score_continuations

    lm = load_model(str(models(name)))
    tok = lm.tokenizer
    pairs = [(encode(tok, p), encode(tok, c)) for p, c in
             [("If the river freezes,", " then"), ("Смысл — это", " движение"),
              ("A much longer prompt than the others, with a clause or two, and yet", " therefore")]]
    batched = score_continuations(lm.model, pairs)
    alone = [score_continuations(lm.model, [pair])[0] for pair in pairs]
    with measuring(lm.model, pairs[0][0]):
        assert _KEPT[lm.model].head           # the head alone reproduces the logits: it runs only where scored
        measured = score_continuations(lm.model, pairs)
    for (lb, rb, gb), (lm_, rm, gm), (la, ra, ga) in zip(batched, measured, alone):
        assert lb == pytest.approx(la, abs=1e-4) and rb == ra and gb == ga
        assert lm_ == pytest.approx(la, abs=1e-4) and rm == ra and gm == ga
    assert len({round(s[0], 3) for s in alone}) == 3     # three different scores, not one repeated


@pytest.mark.parametrize(("name", "modules"), [("llama", ["q_proj", "v_proj"]), ("gpt2", ["c_attn"])])
def test_drift_along_continuations_is_the_same_batched(models, name, modules):
    """Control drift along the base's greedy continuation, computed 16 controls at a time, must equal the same
    computed one control at a time (a random, non-zero adapter, so the KLs are not all 0)."""
    from peft import LoraConfig, get_peft_model

    from corpusforge.shift.measure import _continuation_kls
    from corpusforge.shift.passes import encode

    lm = load_model(str(models(name)))
    model = get_peft_model(lm.model, LoraConfig(r=4, target_modules=modules, init_lora_weights=False)).eval()
    ids = [encode(lm.tokenizer, p) for p in ["The capital of France is", "def add(a, b):", "Пушкин родился в",
                                              "A longer control prompt about the weather in the mountains,"]]
    batched = _continuation_kls(model, lm.tokenizer, ids, 1.0, 6)
    alone = _continuation_kls(model, lm.tokenizer, ids, 1.0, 6, chunk=1)
    assert [len(k) for k in batched] == [len(k) for k in alone] and all(len(k) >= 1 for k in alone)
    for b, a in zip(batched, alone):
        assert b == pytest.approx(a, rel=1e-3, abs=1e-6)
    assert max(max(k) for k in alone) > 1e-4          # the adapter moved something


@pytest.mark.parametrize("name", ["llama", "gpt2", "gpt_neox", "falcon"])
def test_premise_positions_come_from_the_training_forward(models, name):
    """--premise-weight holds the training records' own premise positions: their LoRA logits are taken from the
    forward pass the supervised loss already runs over the whole records, and must equal the logits of the
    premises run alone (a causal model's prefix does not see what follows), row for row under padding."""
    import torch

    from corpusforge.train.data import Example, collate
    from corpusforge.train.lora import LoraSettings, resolve
    from corpusforge.train.step import Head, logits_at, premises

    lm = load_model(str(models(name)))
    tok = lm.tokenizer
    texts = [("If the river freezes,", " then the boats stay in port."),
             ("Смысл — это", " движение."), ("A longer premise, with a clause or two before it ends,", " so.")]
    examples = []
    for premise, rest in texts:
        p, r = tok(premise, add_special_tokens=False).input_ids, tok(rest, add_special_tokens=False).input_ids
        examples.append(Example(p + r, list(range(len(p), len(p) + len(r)))))
    batch, held = collate(examples, tok.pad_token_id), premises(examples, tok.pad_token_id)
    rows, cols = held.rows, held.cols   # the same positions in the training batch, row for row
    assert rows.tolist() == [b for b, e in enumerate(examples) for _ in range(e.supervised[0] - 1)]
    # never the position that predicts the first supervised token:
    assert all(c < examples[b].supervised[0] - 1 for b, c in zip(rows.tolist(), cols.tolist()))
    some = premises(examples, tok.pad_token_id, per_record=2, key="a")   # two positions drawn per record
    drawn = set(zip(some.rows.tolist(), some.cols.tolist()))
    assert len(some.rows) == 6 and drawn <= set(zip(rows.tolist(), cols.tolist()))
    resolved = resolve(LoraSettings(rank=4, targets="attention"), lm.model)
    from peft import get_peft_model

    model = get_peft_model(lm.model, resolved.config)
    head = Head(resolved.arch)
    with torch.no_grad():
        for p in model.parameters():   # a non-zero adapter: LoRA B starts at 0
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)
        shared, alone = (logits_at(model, b, head, (held.rows, held.cols))[0] for b in (batch, held))
        some_shared, some_alone = (logits_at(model, b, head, (some.rows, some.cols))[0] for b in (batch, some))
    torch.testing.assert_close(shared, alone, atol=2e-4, rtol=1e-4)
    torch.testing.assert_close(some_shared, some_alone, atol=2e-4, rtol=1e-4)
    assert float((shared[0] - shared[-1]).abs().max()) > 1e-3   # different positions, different logits


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_compares_shared_prefix_and_steering_vector_work_on_every_architecture(models, name):
    """`corpusforge compare`'s two mechanisms: the prompt's examples as one cached prefix give the rows of the whole
    pass (``passes.prefixed_rows``), and a steering vector added at a layer's input moves the next token and leaves
    nothing behind (``steer.steered``)."""
    import torch

    from corpusforge.shift.passes import logprob_rows, prefixed_rows
    from corpusforge.shift.steer import SteeringVector, steered

    lm = load_model(str(models(name)))
    tok = lm.tokenizer
    prefix = tok("If it rains, then it pours.\n", add_special_tokens=False).input_ids
    seqs = [tok(t, add_special_tokens=False).input_ids for t in ("If the river freezes,", "Ice")]
    starts = [len(seqs[0]) - 1, 0]
    shared = list(prefixed_rows(lm.model, prefix, seqs, starts))
    whole = list(logprob_rows(lm.model, [prefix + s for s in seqs], starts=[len(prefix) + s for s in starts]))
    assert max(float((a - b).abs().max()) for a, b in zip(shared, whole)) < 1e-4
    arch = describe(lm.model)
    ids = [prefix + seqs[0]]
    plain = next(logprob_rows(lm.model, ids, starts=[len(ids[0]) - 1]))
    vector = SteeringVector(torch.randn(lm.model.config.get_text_config().hidden_size,
                                        generator=torch.Generator().manual_seed(0)), 1, 4.0)
    with steered(lm.model, arch, vector):
        moved = next(logprob_rows(lm.model, ids, starts=[len(ids[0]) - 1]))
    again = next(logprob_rows(lm.model, ids, starts=[len(ids[0]) - 1]))
    assert float((moved - plain).abs().max()) > 1e-3 and torch.equal(again, plain)
