"""A tiny random Qwen3.5 (transformers `qwen3_5`) built offline, and its ONNX files in the published layout.

The layer pattern is the real model's ([linear attention x3, full attention] repeated), only narrow, so
every kind of layer and cache the published `-OPT` files have is exercised. Token ids are NOT the real
ones (248056 ...): the runtime must read them from config.json, generation_config.json and the tokenizer.
Everything is seeded, so a comparison with PyTorch compares the same weights every run.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tiny import build_tokenizer, save_hf_tokenizer

QWEN_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
                "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
                "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>",
                "<think>", "</think>"]
PATCH = 16  # the real patch, so pixel_values rows are 3*2*16*16 = 1536 wide as in the published graphs
MIN_PIXELS = 32 * 32  # small images stay small (the real 65,536 would make every tiny test image 256x256)
MAX_PIXELS = 256 * 256

TEXT = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 8, "num_attention_heads": 4,
        "num_key_value_heads": 2, "head_dim": 64, "linear_conv_kernel_dim": 4, "linear_key_head_dim": 16,
        "linear_value_head_dim": 16, "linear_num_key_heads": 4, "linear_num_value_heads": 4,
        "max_position_embeddings": 4096, "rms_norm_eps": 1e-6,
        "rope_parameters": {"rope_type": "default", "rope_theta": 10_000_000.0, "partial_rotary_factor": 0.25,
                            "mrope_section": [3, 3, 2], "mrope_interleaved": True}}
VISION = {"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "patch_size": PATCH,
          "spatial_merge_size": 2, "temporal_patch_size": 2, "num_position_embeddings": 64}


def build_qwen(out_dir: Path, text: dict, vision: dict, seed: int = 0, init_std: float | None = None,
               tied: bool = True) -> Path:
    """A random Qwen3.5 of any size saved like a Hugging Face repo (weights, configs, tokenizer, chat template,
    processor settings), for the real exporter to read from a local folder. `init_std` redraws the weight
    matrices wider and moves the norms off 1 (None keeps transformers' own initialisation); `tied=False`
    gives it an lm_head of its own (0.8B and 2B share the embedding table, larger sizes do not)."""
    import torch
    from transformers import Qwen3_5Config, Qwen3_5ForConditionalGeneration

    from describe_screen.export.qwen35 import CHAT_TEMPLATE, preprocessor_config

    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(out_dir, QWEN_SPECIAL, vocab_size=400)
    ids = {token: tokenizer.token_to_id(token) for token in QWEN_SPECIAL}
    save_hf_tokenizer(out_dir, tokenizer, CHAT_TEMPLATE, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    eos = [ids["<|im_end|>"], ids["<|endoftext|>"]]
    config = Qwen3_5Config(
        text_config={**text, "vocab_size": tokenizer.get_vocab_size(), "eos_token_id": eos[0],
                     "bos_token_id": None, "pad_token_id": ids["<|endoftext|>"], "tie_word_embeddings": tied},
        vision_config={**vision, "out_hidden_size": text["hidden_size"]},
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=tied)
    torch.manual_seed(seed)
    model = Qwen3_5ForConditionalGeneration(config).eval()
    if init_std is not None:
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                if parameter.dim() > 1:
                    parameter.normal_(0.0, init_std)
                elif "norm" in name:
                    parameter.add_(torch.randn_like(parameter) * 0.2)
                elif name.endswith(".bias"):
                    parameter.normal_(0.0, 0.05)
    model.generation_config.eos_token_id = eos
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.generation_config.bos_token_id = ids["<|endoftext|>"]
    model.save_pretrained(out_dir)
    (out_dir / "preprocessor_config.json").write_text(
        json.dumps(preprocessor_config(PATCH, MIN_PIXELS, MAX_PIXELS), indent=2), encoding="utf-8")
    return out_dir


def build_tiny_qwen(out_dir: Path, seed: int = 0) -> Path:
    """The tiny test model: 8 text layers of width 64, 2 vision blocks of width 32. Weights are drawn wider
    than transformers' init so logits are decisive (no greedy ties that rounding could flip)."""
    return build_qwen(out_dir, TEXT, VISION, seed, init_std=0.2)


def tiny_qwen_repo(root: Path, precisions: tuple[str, ...] = ("fp32", "q4")) -> tuple[Path, Path]:
    """(source checkpoint, exported repo) under `root`, built once per test session: the repo has the
    published `-OPT` layout (root files + onnx/<graph><suffix>.onnx + .onnx_data) with `precisions`."""
    from describe_screen.export.qwen35 import write_repo

    source, repo = root / "tiny-qwen35-source", root / "tiny-qwen35-onnx"
    done = repo / ".precisions"
    if not done.is_file() or not set(precisions) <= set(done.read_text().split()):
        if not (source / "config.json").is_file():
            build_tiny_qwen(source)
        shutil.rmtree(repo, ignore_errors=True)
        write_repo(source, repo, list(precisions))
        done.write_text(" ".join(precisions))
    return source, repo


def tiny_qwen_bundle(root: Path, precision: str = "fp32") -> Path:
    """An installed bundle (flat files + manifest.json, as `models install` stores the published files) of
    one precision of the tiny Qwen3.5, made once per session from tiny_qwen_repo."""
    import dataclasses

    from describe_screen import models
    from describe_screen.export.qwen35 import install_repo

    _, repo = tiny_qwen_repo(root)
    bundle = root / "qwen-models" / f"tiny-qwen35-{precision}"  # apart from the SmolVLM tests' models folder
    if not (bundle / "manifest.json").is_file():
        manifest = dataclasses.replace(models.manifest("smolvlm-256m-instruct"), name=bundle.name, family="qwen3.5")
        install_repo(repo, bundle, manifest.bundle_info(), [precision])
    return bundle


def torch_model(source: Path):
    """The PyTorch reference of a tiny checkpoint (float32, eager attention)."""
    import torch
    from transformers import Qwen3_5ForConditionalGeneration

    return Qwen3_5ForConditionalGeneration.from_pretrained(source, dtype=torch.float32,
                                                           attn_implementation="eager").eval()
