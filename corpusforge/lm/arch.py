"""A causal LM's anatomy, found from its structure: decoder layers, each layer's attention and MLP projections,
the final norm and the output head — whatever the family calls them.

- The decoder layers are the model's largest ``ModuleList`` of identical blocks
  (``model.layers``, ``transformer.h``, ``gpt_neox.layers``, ``model.decoder.layers`` …).
- In each layer, the attention block is its sub-module whose class is an attention
  (``LlamaAttention``, ``GPT2Attention``, ``FalconAttention`` …); its projections are
  every linear map inside it, separate (q, k, v, o) or fused (``qkv_proj``,
  ``c_attn``, ``query_key_value``). Every other linear map of the layer is the MLP
  (``gate/up/down``, ``fc1/fc2``, ``c_fc/c_proj``, ``dense_h_to_4h`` …), whether or
  not the layer wraps it in an MLP module (OPT does not).
- "Linear" means ``nn.Linear`` (and its subclasses, 4-bit ones included) or
  GPT-2's ``Conv1D``, whose weight is stored transposed.
- A mixture of experts (Mixtral, Qwen2/3-MoE, OLMoE) keeps its experts as fused
  3-D parameters, (experts, out, in): each is one projection of kind ``Experts``
  (``mlp.experts.gate_up_proj``), adapted with peft's ``target_parameters``, one
  rank-r LoRA per expert. The router that picks the experts is left alone by the
  presets (block ``router``): a LoRA on it changes which experts see a token, not
  what they write, and a small change there can reroute everything. A router
  that is an ``nn.Linear`` (Qwen2-MoE's ``shared_expert_gate``) can still be named
  in ``--targets``; a router of its own class (``MixtralTopKRouter``) is no linear
  map peft adapts.
- The final norm is the last norm outside the layers; the head is the model's
  output embedding, followed by the model's own logit soft-capping or scaling
  (Gemma 2's ``final_logit_softcapping``, Granite's ``logits_scaling``, Cohere's
  ``logit_scale``). ``check_head`` verifies both against the model's own output.
- A forward pass can be *entered* at a decoder layer with that layer's input given
  (``entered_at``): the layers before it leave the stack for the call, everything
  else — masks, positions, the layers after, the final norm — runs as the model's
  own code runs it. Below the first layer a LoRA adapts, the adapted model and the
  base compute the same, so those inputs can be computed once and kept, or shared
  with another pass. ``check_entry`` holds it to the full pass on each model.

The presets mean the same thing everywhere: ``attention`` = the attention block's
projections, ``mlp`` = the rest of the layer's, ``attention+mlp`` = all of them.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from ..errors import TrainError

PRESETS = ("attention", "mlp", "attention+mlp")
#: short names people use for the Llama family's projections
ALIASES = {"q": "q_proj", "k": "k_proj", "v": "v_proj", "o": "o_proj", "gate": "gate_proj", "up": "up_proj",
           "down": "down_proj"}


@dataclass(frozen=True)
class Projection:
    """One linear map of a decoder layer that LoRA can adapt."""

    name: str          # its full module name in the model: "model.layers.3.self_attn.q_proj"
    layer: int
    block: str         # "attention" or "mlp"
    short: str         # its own name: "q_proj", "c_attn", "fc1"
    in_features: int
    out_features: int
    kind: str          # "Linear", "Conv1D" or "Experts" (a fused 3-D parameter: name is the parameter's)
    experts: int = 1   # Experts: how many experts the parameter holds

    @property
    def label(self) -> str:
        """``attention.c_proj`` / ``mlp.c_proj``: unique within a layer (GPT-2 has a c_proj in each block)."""
        return f"{self.block}.{self.short}"

    def lora_parameters(self, rank: int) -> int:
        return rank * (self.in_features + self.out_features) * self.experts


@dataclass
class Architecture:
    model_type: str
    layers_path: str                 # "model.layers"
    num_layers: int
    projections: list[Projection]
    final_norm: str | None           # full module name
    logit_softcap: float | None = None
    logit_multiplier: float = 1.0    # applied after the head (Granite divides, Cohere multiplies)
    peft_defaults: list[str] = field(default_factory=list)

    def labels(self) -> list[str]:
        """Every projection label a layer has, in the order they appear."""
        return list(dict.fromkeys(p.label for p in self.projections))

    def resolve(self, targets: str | list[str], layers: list[int] | None) -> list[Projection]:
        """The projections a ``--targets`` value means in ``layers`` (None: all); unknown names list the real ones."""
        chosen_layers = set(range(self.num_layers)) if layers is None else set(layers)
        wanted = _wanted(targets, self)
        return [p for p in self.projections if p.layer in chosen_layers and wanted(p)]


def _wanted(targets: str | list[str], arch: Architecture):
    if isinstance(targets, str) and targets in PRESETS:   # never the router
        blocks = {"attention": {"attention"}, "mlp": {"mlp"}, "attention+mlp": {"attention", "mlp"}}[targets]
        return lambda p: p.block in blocks
    names = targets if isinstance(targets, list) else [t.strip() for t in targets.split(",") if t.strip()]
    names = [ALIASES.get(n, n) if not any(p.short == n for p in arch.projections) else n for n in names]
    known = {p.short for p in arch.projections} | {p.label for p in arch.projections}
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise TrainError(f"--targets: the model has no module(s) {unknown or names}; its linear modules are "
                         f"{', '.join(arch.labels())} (presets: {', '.join(PRESETS)})")
    chosen = set(names)
    return lambda p: p.short in chosen or p.label in chosen


def _linear_kind(module) -> str | None:
    import torch

    if isinstance(module, torch.nn.Linear):
        return "Linear"
    if type(module).__name__ == "Conv1D" and getattr(module, "weight", None) is not None \
            and module.weight.dim() == 2:
        return "Conv1D"
    return None


def _shape(module, kind: str) -> tuple[int, int]:
    if kind == "Conv1D":            # weight is (in, out)
        return int(module.weight.shape[0]), int(module.weight.shape[1])
    return int(module.in_features), int(module.out_features)


def _expert_projections(module, prefix: str, index: int, short: str) -> list[Projection]:
    """The fused expert parameters a module owns, (experts, out, in) — or (experts, in, out) where the module
    says ``is_transposed``, as peft reads them."""
    out = []
    for param, weight in module.named_parameters(recurse=False):
        if weight.dim() != 3:
            continue
        experts, a, b = (int(n) for n in weight.shape)
        rows, cols = (b, a) if getattr(module, "is_transposed", False) else (a, b)
        out.append(Projection(f"{prefix}.{param}", index, "mlp", f"{short}.{param}", cols, rows, "Experts", experts))
    return out


def _is_router(projection: Projection) -> bool:
    short = projection.short.rsplit(".", 1)[-1]
    return short == "gate" or short.endswith("_gate") or "router" in short


def decoder_layers(model) -> tuple[str, list]:
    """The model's decoder layers: its largest ModuleList of identical blocks, by parameter count."""
    import torch

    best, best_size = None, 0
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.ModuleList) or len(module) == 0:
            continue
        if len({type(m) for m in module}) != 1:
            continue
        size = sum(p.numel() for p in module.parameters())
        if size > best_size:
            best, best_size = (name, list(module)), size
    if best is None:
        raise TrainError(f"cannot find the decoder layers of {type(model).__name__}: no list of blocks in it")
    return best


def _attention_block(layer) -> tuple[str, object] | None:
    """The layer's attention sub-module: the outermost one whose class is an attention."""
    for name, module in layer.named_modules():
        if name and "attention" in type(module).__name__.lower():
            return name, module
    return None


def _final_norm(model, layers_path: str) -> str | None:
    found = None
    for name, module in model.named_modules():
        if name.startswith(layers_path + ".") or name == layers_path:
            continue
        if "norm" in type(module).__name__.lower() and any(True for _ in module.parameters(recurse=False)):
            found = name
    return found


def _peft_defaults(model_type: str) -> list[str]:
    try:
        from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as MAPPING
    except ImportError:  # a peft without the table: nothing to cross-check against
        return []
    return list(MAPPING.get(model_type, []))


def describe(model) -> Architecture:
    """The anatomy of ``model`` (a transformers causal LM, with or without a peft wrapper)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    layers_path, layers = decoder_layers(base)
    projections = []
    for index, layer in enumerate(layers):
        attention = _attention_block(layer)
        wrapped: list[str] = []   # LoRA wrappers already seen: their insides (base layer, A, B) are not projections
        mine: list[Projection] = []
        for name, module in layer.named_modules():
            if any(name.startswith(w + ".") for w in wrapped):
                continue
            if hasattr(module, "get_base_layer") and hasattr(module, "lora_A"):   # peft's LoRA around a projection
                wrapped.append(name)
                module = module.get_base_layer()
            in_attention = attention is not None and (name == attention[0] or name.startswith(attention[0] + "."))
            kind = _linear_kind(module)
            if kind is None:
                if not in_attention:
                    mine += _expert_projections(module, f"{layers_path}.{index}.{name}", index,
                                                name.rsplit(".", 1)[-1])
                continue
            mine.append(Projection(f"{layers_path}.{index}.{name}", index, "attention" if in_attention else "mlp",
                                   name.rsplit(".", 1)[-1], *_shape(module, kind), kind))
        if any(p.kind == "Experts" for p in mine):   # a mixture of experts: its gates are routers
            mine = [replace(p, block="router") if p.kind != "Experts" and p.block == "mlp" and _is_router(p) else p
                    for p in mine]
        projections += mine
    config = base.config
    text = getattr(config, "get_text_config", lambda: config)()
    multiplier = 1.0
    if getattr(text, "logits_scaling", None):
        multiplier = 1.0 / float(text.logits_scaling)
    if getattr(text, "logit_scale", None):
        multiplier *= float(text.logit_scale)
    return Architecture(getattr(config, "model_type", type(base).__name__), layers_path, len(layers), projections,
                        _final_norm(base, layers_path), getattr(text, "final_logit_softcapping", None) or None,
                        multiplier, _peft_defaults(getattr(config, "model_type", "")))


def module(model, name: str):
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.get_submodule(name)


def head_logits(model, arch: Architecture, hidden):
    """The model's logits from final hidden states: the output head, then its soft-capping and scaling.
    (..., hidden) → (..., vocab)"""
    import torch

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    logits = base.get_output_embeddings()(hidden)
    if arch.logit_multiplier != 1.0:
        logits = logits * arch.logit_multiplier
    if arch.logit_softcap:
        logits = torch.tanh(logits / arch.logit_softcap) * arch.logit_softcap
    return logits


def lens_logits(model, arch: Architecture, hidden):
    """The logit lens of a residual stream inside the model: the final norm, then the head."""
    if arch.final_norm is None:
        raise TrainError(f"{arch.model_type}: no final norm found, so there is no logit lens")
    return head_logits(model, arch, module(model, arch.final_norm)(hidden))


def check_head(model, arch: Architecture, input_ids) -> tuple[bool, bool]:
    """(head_ok, lens_ok): does head_logits(last hidden state) give the model's own logits, and does
    final norm + head on the last decoder layer's output give them too? Both should hold for every
    architecture; where one does not, the callers fall back to the model's own forward pass."""
    import torch

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    captured = {}

    def keep(module, inputs, output) -> None:   # returns None: the layer's output is left as it is
        captured["h"] = output[0] if isinstance(output, tuple) else output

    last = base.get_submodule(f"{arch.layers_path}.{arch.num_layers - 1}")
    hook = last.register_forward_hook(keep)
    try:
        with torch.no_grad():
            out = base(input_ids=input_ids, output_hidden_states=True)
    finally:
        hook.remove()
    want = out.logits.float()
    tolerance = dict(atol=1e-3 * (1 + float(want.abs().max())), rtol=1e-3)
    with torch.no_grad():
        head_ok = torch.allclose(head_logits(model, arch, out.hidden_states[-1]).float(), want, **tolerance)
        lens_ok = arch.final_norm is not None and "h" in captured and torch.allclose(
            lens_logits(model, arch, captured["h"]).float(), want, **tolerance)
    return bool(head_ok), bool(lens_ok)


def _hidden_argument(args: tuple, kwargs: dict):
    """A decoder layer's input hidden states, wherever its caller put them (first positional, or by name)."""
    return args[0] if args else kwargs["hidden_states"]


@contextmanager
def layer_input(model, arch: Architecture, layer: int):
    """Within: the input hidden states of decoder layer ``layer`` in the last forward pass, as ``seen["hidden"]``
    (yields the dict ``seen``)."""
    seen: dict = {}

    def keep(_, args, kwargs) -> None:
        seen["hidden"] = _hidden_argument(args, kwargs)

    hook = module(model, f"{arch.layers_path}.{layer}").register_forward_pre_hook(keep, with_kwargs=True)
    try:
        yield seen
    finally:
        hook.remove()


@contextmanager
def entered_at(model, arch: Architecture, layer: int, hidden):
    """Within: the model's forward pass starts at decoder layer ``layer`` with ``hidden`` (batch, seq, d) as
    that layer's input. The layers before it are out of the stack for the call and the embeddings' output is
    dropped; the rest runs as the model's own code runs it. The config's per-layer lists (``layer_types``:
    Gemma 2/3, Qwen 2/3 and others pick each layer's mask and rotary embedding by its place in the loop) are
    cut the same way for the call."""
    import torch

    parent_path, _, attr = arch.layers_path.rpartition(".")
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    parent = base.get_submodule(parent_path) if parent_path else base
    stack = getattr(parent, attr)
    config = getattr(base, "config", None)
    config = config.get_text_config() if hasattr(config, "get_text_config") else config
    per_layer = {name: value for name, value in vars(config).items()
                 if isinstance(value, (list, tuple)) and len(value) == len(stack)} if config is not None else {}

    def enter(_, args, kwargs):
        if args:
            return (hidden, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": hidden}

    hook = stack[layer].register_forward_pre_hook(enter, with_kwargs=True)
    setattr(parent, attr, torch.nn.ModuleList(list(stack)[layer:]))
    for name, value in per_layer.items():
        setattr(config, name, type(value)(value[layer:]))
    try:
        yield
    finally:
        setattr(parent, attr, stack)
        for name, value in per_layer.items():
            setattr(config, name, value)
        hook.remove()


def check_entry(model, arch: Architecture, layer: int, input_ids) -> bool:
    """Does a pass entered at ``layer`` with the inputs the full pass gave that layer end with the full pass's
    last hidden states? Callers that would enter there fall back to the full pass where it does not."""
    import torch

    body = (model.get_base_model() if hasattr(model, "get_base_model") else model).base_model
    mask = torch.ones_like(input_ids)
    try:
        with torch.no_grad():
            with layer_input(model, arch, layer) as seen:
                want = body(input_ids=input_ids, attention_mask=mask, use_cache=False).last_hidden_state
            with entered_at(model, arch, layer, seen["hidden"]):
                got = body(input_ids=input_ids, attention_mask=mask, use_cache=False).last_hidden_state
    except (TypeError, KeyError, IndexError, RuntimeError):   # a model whose layers are called another way
        return False
    return bool(torch.allclose(got.float(), want.float(), atol=1e-4 * (1 + float(want.abs().max())), rtol=1e-4))
