"""Tiny Hugging Face model folders made in the test run (random weights, no download): one
``...ForSequenceClassification`` per architecture family, a sentence-transformers folder per
pooling mode, and a plain encoder, each with a tokenizer built by the ``tokenizers`` library
from a small vocabulary and saved with ``save_pretrained`` (docs/huggingface.md)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

WORDS = (
    "the a this that movie film book song plot actor story music ending scene was is felt "
    "good great bad awful fine boring brilliant dull lovely terrible okay slow fast funny sad "
    "very not really quite too so and but or with without i we they loved hated liked it"
).split()
LABELS = ["negative", "neutral", "positive"]
CLASSIFIERS = ("bert", "distilbert", "roberta", "xlm-roberta")
POOLINGS = ("mean", "cls", "max")


def texts(count: int, seed: int) -> list[str]:
    """Short sentences of the vocabulary, with an unknown word and odd casing now and then."""
    rng = np.random.default_rng(seed)
    made = []
    for index in range(count):
        words = list(rng.choice(WORDS, size=int(rng.integers(2, 12))))
        if index % 7 == 0:
            words.append("zebra")  # not in the vocabulary
        made.append(" ".join(words).capitalize() + ("!" if index % 5 == 0 else "."))
    return made


def _wordpiece(folder: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {token: index for index, token in enumerate([*specials, *WORDS, ".", "!", ",", "?"])}
    tokenizer = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    tokenizer.decoder = decoders.WordPiece()
    PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]", model_max_length=64,
    ).save_pretrained(folder)


def _bpe(folder: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(texts(300, seed=99), trainer=trainer)
    tokenizer.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
        cls_token="<s>", sep_token="</s>", mask_token="<mask>", model_max_length=62,
    ).save_pretrained(folder)


def _config(family: str, vocab_size: int, **extra: object):
    from transformers import BertConfig, DistilBertConfig, RobertaConfig, XLMRobertaConfig

    if family == "distilbert":
        return DistilBertConfig(vocab_size=vocab_size, dim=32, n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=64, **extra)
    common = dict(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, **extra)
    if family == "bert":
        return BertConfig(max_position_embeddings=64, **common)
    kind = RobertaConfig if family == "roberta" else XLMRobertaConfig
    return kind(max_position_embeddings=64, pad_token_id=1, bos_token_id=0, eos_token_id=2, type_vocab_size=1, **common)


def _tokenizer(family: str, folder: Path) -> int:
    (_bpe if family in ("roberta", "xlm-roberta") else _wordpiece)(folder)
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(folder / "tokenizer.json")).get_vocab_size()


def _seed(seed: int) -> None:
    import torch

    torch.manual_seed(seed)


def classifier(family: str, folder: Path) -> Path:
    """A 2-layer, 32-wide ``<Family>ForSequenceClassification`` with three named classes. The
    weights are drawn wider than transformers' default (initializer_range 0.02) so the classes
    are well apart and int8 keeps every label."""
    from transformers import AutoModelForSequenceClassification

    folder.mkdir(parents=True, exist_ok=True)
    vocab_size = _tokenizer(family, folder)
    _seed(CLASSIFIERS.index(family))
    config = _config(
        family, vocab_size, num_labels=len(LABELS), id2label=dict(enumerate(LABELS)),
        label2id={label: index for index, label in enumerate(LABELS)}, initializer_range=0.2,
    )
    AutoModelForSequenceClassification.from_config(config).eval().save_pretrained(folder)
    return folder


def encoder(folder: Path, family: str = "bert", vocab_size: int | None = None) -> Path:
    """A plain encoder (``BertModel``), no modules.json: pooling is the build's choice.
    ``vocab_size``: embedding rows beyond the tokenizer's (for feeds of arbitrary token ids)."""
    from transformers import AutoModel

    folder.mkdir(parents=True, exist_ok=True)
    rows = max(_tokenizer(family, folder), vocab_size or 0)
    _seed(7)
    AutoModel.from_config(_config(family, rows, initializer_range=0.2)).eval().save_pretrained(folder)
    return folder


def sentence_transformer(folder: Path, pooling: str, dense: bool = False) -> Path:
    """A sentence-transformers folder: Transformer (a plain BERT encoder), Pooling(``pooling``),
    optionally Dense (32 -> 16, tanh), Normalize."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import (
        Dense,
        Normalize,
        Pooling,
        Transformer,
    )

    base = encoder(folder.parent / f"{folder.name}-encoder")
    transformer = Transformer(str(base), max_seq_length=48, model_args={"local_files_only": True},
                              tokenizer_args={"local_files_only": True}, config_args={"local_files_only": True})
    _seed(11)
    modules = [transformer, Pooling(transformer.get_embedding_dimension(), pooling_mode=pooling)]
    if dense:
        modules.append(Dense(in_features=32, out_features=16))
    modules.append(Normalize())
    SentenceTransformer(modules=modules, device="cpu").save(str(folder))
    return folder
