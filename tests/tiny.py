"""Offline builders of tiny models for tests: a locally trained tokenizer and a tiny random SmolVLM.

Nothing here downloads anything; every builder is deterministic (fixed seeds), so a test that compares
ONNX with PyTorch compares the same weights every run.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

# Text the tokenizers learn from: screen-like words, punctuation and a few multi-byte characters so
# streaming detokenisation meets characters split across tokens.
CORPUS = """\
The window shows a dialog with two buttons, OK and Cancel. A text field reads: Name, Address, City.
The screen has a menu bar with File, Edit, View, Help. An error says: the file could not be saved.
Café menu: crème brûlée €4, naïve façade — “quoted” ✓ 日本語 テキスト. Click Save to continue.
What is on the screen? Describe this image in detail. Answer briefly. Text recognised on screen:
"""

SMOLVLM_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<end_of_utterance>",
                   "<fake_token_around_image>", "<global-img>", "<image>",
                   *(f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7))]

SMOLVLM_CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)


def build_tokenizer(out_dir: Path, special_tokens: Iterable[str], vocab_size: int = 400,
                    corpus: str = CORPUS):
    """Train a byte-level BPE tokenizer on `corpus` with `special_tokens` first (ids 0, 1, ...) and
    save it as out_dir/tokenizer.json. Returns the `tokenizers.Tokenizer`. Any family can use it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(special_tokens),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(corpus.splitlines() * 4, trainer)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(out_dir / "tokenizer.json"))
    return tokenizer


def save_hf_tokenizer(out_dir: Path, tokenizer, chat_template: str, **special: str):
    """Save `tokenizer` the way transformers does (tokenizer.json + tokenizer_config.json)."""
    from transformers import PreTrainedTokenizerFast

    hf = PreTrainedTokenizerFast(tokenizer_object=tokenizer, **special)
    hf.chat_template = chat_template
    hf.save_pretrained(out_dir)
    return hf


def build_smolvlm(out_dir: Path, vision: dict, text: dict, tile: int, patch: int, scale_factor: int,
                  seed: int = 0, init_std: float | None = None) -> Path:
    """A random SmolVLM of any size, saved with tokenizer and processor configs in the layout of a
    Hugging Face repo, so the real exporter exports it from a local folder. `init_std` redraws the
    weight matrices with a larger spread (None keeps transformers' own initialisation)."""
    import torch
    from transformers import SmolVLMConfig, SmolVLMForConditionalGeneration
    from transformers.models.smolvlm.image_processing_pil_smolvlm import SmolVLMImageProcessorPil

    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(out_dir, SMOLVLM_SPECIAL)
    save_hf_tokenizer(out_dir, tokenizer, SMOLVLM_CHAT_TEMPLATE, eos_token="<end_of_utterance>",
                      pad_token="<|im_end|>", bos_token="<|im_start|>", unk_token="<|endoftext|>")
    eos = tokenizer.token_to_id("<end_of_utterance>")
    config = SmolVLMConfig(
        image_token_id=tokenizer.token_to_id("<image>"),
        scale_factor=scale_factor,
        vision_config={**vision, "image_size": tile, "patch_size": patch},
        text_config={"model_type": "llama", "vocab_size": tokenizer.get_vocab_size(), "rope_theta": 100000.0,
                     "rms_norm_eps": 1e-5, "pad_token_id": tokenizer.token_to_id("<|im_end|>"),
                     "bos_token_id": tokenizer.token_to_id("<|im_start|>"), "eos_token_id": eos, **text},
    )
    torch.manual_seed(seed)
    model = SmolVLMForConditionalGeneration(config).eval()
    if init_std is not None:
        with torch.no_grad():
            for parameter in model.parameters():
                if parameter.dim() > 1:
                    parameter.normal_(0.0, init_std)
    model.generation_config.eos_token_id = eos
    model.generation_config.pad_token_id = config.text_config.pad_token_id
    model.generation_config.bos_token_id = config.text_config.bos_token_id
    model.save_pretrained(out_dir)
    SmolVLMImageProcessorPil(size={"longest_edge": 4 * tile},
                             max_image_size={"longest_edge": tile}).save_pretrained(out_dir)
    seq_len = (tile // patch) ** 2 // scale_factor**2
    (out_dir / "processor_config.json").write_text(
        json.dumps({"image_seq_len": seq_len, "processor_class": "SmolVLMProcessor"}), encoding="utf-8")
    return out_dir


def build_tiny_smolvlm(out_dir: Path, seed: int = 0) -> Path:
    """2 vision + 2 text layers, 64 px tiles of 16 image tokens. Weights are drawn wider than
    transformers' init so logits are decisive and greedy ties (which would make token parity
    depend on rounding) do not occur."""
    return build_smolvlm(
        out_dir, tile=64, patch=8, scale_factor=2, seed=seed, init_std=0.2,
        vision={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2},
        text={"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 2, "head_dim": 16, "max_position_embeddings": 2048})


def tiny_smolvlm_bundle(root: Path) -> tuple[Path, Path]:
    """(source folder, exported fp32+int8 bundle) of the tiny SmolVLM under `root`, built once per
    test session however many test files ask for it."""
    import dataclasses

    from describe_screen import models
    from describe_screen.export import export_model

    source, bundle = root / "tiny-smolvlm-source", root / "models" / "tiny-smolvlm"
    if not (bundle / "manifest.json").is_file():
        build_tiny_smolvlm(source)
        manifest = dataclasses.replace(models.manifest("smolvlm-256m-instruct"), name="tiny-smolvlm")
        export_model(manifest, bundle, "auto", source=source)
    return source, bundle


def published_bundle(exported: Path, out: Path, float32_inputs: dict[str, list[str]] | None = None,
                     precisions: tuple[str, ...] = ("fp32", "fp16", "int8", "q4", "q4f16")) -> Path:
    """A bundle laid out as `models install` stores the published files: every graph (embed_tokens too)
    in each of `precisions`, flat, named <graph><suffix>.onnx, made from `exported`'s fp32 graphs with the
    published weight-set recipes (MatMulNBits for q4, float16 I/O for fp16 except `float32_inputs`)."""
    import json
    import shutil

    from describe_screen.export.common import make_variants
    from describe_screen.vlm.manifest import MANIFEST, PRECISIONS, write_manifest

    out.mkdir(parents=True)
    manifest = json.loads((exported / MANIFEST).read_text())
    graphs = [name for name in manifest["files"]
              if name.endswith(".onnx") and not any(name.endswith(f"_{p}.onnx") for p in PRECISIONS)]
    for name in manifest["files"]:
        if not name.endswith(".onnx") or name in graphs:
            shutil.copy(exported / name, out / name)
    make_variants(out, graphs, [p for p in precisions if p != "fp32"] + ["fp32"], float32_inputs)
    for name in graphs if "fp32" not in precisions else ():
        (out / name).unlink()
    info = {k: v for k, v in manifest.items() if k not in ("files", "format")} | {"precisions": list(precisions)}
    write_manifest(out, info, [p.name for p in out.iterdir() if p.name not in (MANIFEST, ".verified.json")])
    return out


def export_decoder_dynamo(source: Path, path: Path) -> Path:
    """The tiny SmolVLM's decoder through a second exporter: torch's dynamo exporter (torch.export and
    onnxscript), with the runtime's inputs and outputs but its own operators and names ("val_71",
    "node_linear"), so what reads the graph cannot lean on our TorchScript export's node names."""
    import torch
    from transformers import AutoModelForImageTextToText

    from describe_screen.export.smolvlm import _decoder_wrapper
    from describe_screen.vlm.smolvlm import DECODER, cache_names

    model = AutoModelForImageTextToText.from_pretrained(source, dtype=torch.float32, attn_implementation="eager")
    text = model.config.text_config
    layers = text.num_hidden_layers
    embeds = torch.randn(1, 3, text.hidden_size)
    mask = torch.ones(1, 5, dtype=torch.int64)
    positions = torch.arange(2, 5, dtype=torch.int64)[None]
    past = tuple(torch.randn(1, text.num_key_value_heads, 2, text.head_dim) for _ in range(2 * layers))
    dynamic = torch.export.Dim.DYNAMIC
    with torch.no_grad():
        torch.onnx.export(_decoder_wrapper(model.eval(), layers), (embeds, mask, positions, *past), str(path),
                          dynamo=True, optimize=True, verbose=False,
                          input_names=[*DECODER.inputs, *cache_names(layers, "past_key_values")],
                          output_names=[*DECODER.outputs, *cache_names(layers, "present")],
                          dynamic_shapes=[{1: dynamic}, {1: dynamic}, {1: dynamic}, tuple([{2: dynamic}] * len(past))])
    return path
