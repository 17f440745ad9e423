"""One ONNX file that picks, per frame, the net that suits the input: the shipped default's router.

A model that is best on the games it was trained on (``unet_lut``: it looks colours up by the
pixel's exact lightness) is worse than grey on a game it has never seen, whose palette puts other
colours at those lightness values; a net that colours from shapes alone (``unet``) is the better
answer there.  And a monochrome Game Boy's four shades carry no palette at all: a net trained on
the real monochrome twins beats one that mostly sees colour lightness.  Rather than ship three
models and make the player choose, the router puts all three in one graph:

* ``frac[k]`` = share of the frame's pixels whose lightness level (``round(L/100*255)``, the
  level ``unet_lut`` indexes by) is one a known game uses (``frac[0]``: one of the 4 DMG shades).
  The level histogram is one ``ScatterElements(reduction="add")``; the fractions one ``MatMul``
  with a small 0/1 table (``1 + games`` rows of 256) stored in the graph.
* every pixel a DMG shade -> ``monochrome`` net;
* else the frame's levels fit one known game (``max(frac[1:]) >= threshold``) -> ``primary``;
* else -> ``fallback``.

Only the chosen branch runs (ONNX ``If``), so the cost is one net plus a histogram.  The decision
is per call: a batch is routed as a whole (by its pooled histogram), so evaluation feeds router
models one frame at a time (``metadata["router"]``).  Torch-free: only ``onnx`` is needed to build
one, only onnxruntime to run it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dataset.color import DMG_LEVELS_L
from utils.errors import UserError
from utils.tiles import WINDOW, window_weights
from utils.tiles import window_hashes as tile_window_hashes

#: Histogram bins: the lightness level ``round(L / 100 * 255)``, as ``models.archs.UNetLut`` uses.
LEVELS = 256
#: A level counts as "used by a game" when it holds at least this share of the game's pixels, so
#: one stray anti-aliased pixel in the training frames does not admit a level for good.
DEFAULT_MIN_SHARE = 1e-3
#: A frame goes to the primary net when at least this share of its pixels sit on one known game's
#: levels (measured: ~1 % of unseen stretches of known games fall below it, ~99 % of unseen games).
DEFAULT_THRESHOLD = 0.99


def level_of(L: np.ndarray) -> np.ndarray:
    """Lightness level 0..255 of Lab L (0..100), exactly as the graph computes it from L/100."""
    x = np.asarray(L, np.float32) / np.float32(100.0)
    return np.clip(np.round(x * np.float32(255.0)), 0, 255).astype(np.int64)


def dmg_row() -> np.ndarray:
    """0/1 over levels: the 4 DMG shades' levels and their neighbours (float rounding margin)."""
    row = np.zeros(LEVELS, np.float32)
    for lv in level_of(np.asarray(DMG_LEVELS_L)):
        row[max(0, lv - 1):lv + 2] = 1.0
    return row


def game_rows(level_counts: Mapping[str, np.ndarray],
              min_share: float = DEFAULT_MIN_SHARE) -> tuple[list[str], np.ndarray]:
    """Per game, the 0/1 row of levels it uses (from its training frames' level histogram)."""
    names = sorted(level_counts)
    rows = []
    for g in names:
        c = np.asarray(level_counts[g], np.float64).reshape(-1)
        if c.shape != (LEVELS,) or c.sum() <= 0:
            raise UserError(f"router: level histogram of {g!r} must be {LEVELS} counts with some pixels")
        rows.append((c / c.sum() >= min_share).astype(np.float32))
    return names, np.stack(rows) if rows else np.zeros((0, LEVELS), np.float32)


def level_counts(L_frames: np.ndarray) -> np.ndarray:
    """Histogram (256,) of lightness levels over frames of Lab L."""
    return np.bincount(level_of(L_frames).ravel(), minlength=LEVELS).astype(np.int64)


def _load_onnx(path: str | Path, what: str) -> Any:
    """``onnx.load`` with a one-line UserError naming ``what`` failed to load."""
    import onnx

    try:
        return onnx.load(str(path))
    except Exception as e:  # noqa: BLE001 - onnx raises DecodeError, OSError, ...
        raise UserError(f"router: cannot load {what} {path}: {' '.join(str(e).split())[:120]}") from None


def _outer_if(model: Any) -> Any:
    """The router graph's top-level If node (4-shade input or not)."""
    (outer,) = [n for n in model.graph.node if n.op_type == "If"]
    return outer


def _gate_if(then_graph: Any) -> Any | None:
    """The known-game gate's If node inside the 4-shade branch, None without a gate."""
    gates = [n for n in then_graph.node if n.op_type == "If"]
    return gates[0] if gates else None


def _update_info(model: Any, update: Callable[[dict[str, Any]], None]) -> None:
    """Apply ``update`` to the router's ``retrocolor`` metadata JSON (other props are kept), then check."""
    import onnx
    from onnx import helper

    props = {p.key: p.value for p in model.metadata_props}
    info = json.loads(props.get("retrocolor", "{}"))
    update(info)
    del model.metadata_props[:]
    helper.set_model_props(model, {**props, "retrocolor": json.dumps(info)})
    onnx.checker.check_model(model)


def route_numpy(L: np.ndarray, table: np.ndarray, threshold: float, gate: np.ndarray | None = None,
                gate_threshold: float | None = None) -> str:
    """The branch the graph takes for one frame of Lab L: ``monochrome``, ``unknown`` (with a
    known-game ``gate`` table, :func:`add_known_gate`), ``primary`` or ``fallback``.

    The same arithmetic as the graph (for tests, reports and the model card).
    """
    h = level_counts(L).astype(np.float32)
    frac = table @ (h / max(1.0, float(h.sum())))
    if frac[0] >= 1.0 - 1e-6:
        limit = DEFAULT_GATE_THRESHOLD if gate_threshold is None else gate_threshold
        if gate is not None and known_share(L, gate) < limit:
            return "unknown"
        return "monochrome"
    if frac.shape[0] > 1 and float(frac[1:].max()) >= threshold:
        return "primary"
    return "fallback"


def _branch(model: Any, prefix: str, outer_input: str, out_name: str) -> Any:
    """``model``'s graph as an If branch: names prefixed, its input bound to the outer input."""
    import onnx
    from onnx import compose, helper

    g = compose.add_prefix(model, prefix=prefix).graph
    (inp,) = g.input
    (out,) = [o for o in g.output if o.name == prefix + "ab"] or [g.output[0]]
    nodes = []
    for n in g.node:
        n2 = onnx.NodeProto()
        n2.CopyFrom(n)
        for i, name in enumerate(n2.input):
            if name == inp.name:
                n2.input[i] = outer_input
        for i, name in enumerate(n2.output):
            if name == out.name:
                n2.output[i] = out_name
        nodes.append(n2)
    vi = helper.make_tensor_value_info(out_name, onnx.TensorProto.FLOAT, None)
    return helper.make_graph(nodes, prefix + "graph", [], [vi], initializer=list(g.initializer))


def build_router(primary: str | Path, fallback: str | Path, monochrome: str | Path,
                 games: Sequence[str], table: np.ndarray, threshold: float = DEFAULT_THRESHOLD,
                 meta: dict[str, Any] | None = None) -> Any:
    """A ModelProto routing between three colorizer ONNX files (see the module docstring).

    ``table`` is ``(1 + len(games), 256)``: row 0 the DMG shades (:func:`dmg_row`), then one row
    per game (:func:`game_rows`).  All three models must take ``L/100`` (B, 1, H, W) and give
    ``ab/128`` (B, 2, H, W); their opsets must agree.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    table = np.asarray(table, np.float32)
    if table.ndim != 2 or table.shape[1] != LEVELS or table.shape[0] != 1 + len(games) or len(games) < 1:
        raise UserError(f"router: table must be (1 + {len(games)} games, {LEVELS}), got {table.shape}")
    if not 0.0 < threshold <= 1.0:
        raise UserError(f"router: threshold must be in (0, 1], got {threshold}")
    protos = {key: _load_onnx(path, f"{key} model")
              for key, path in (("primary", primary), ("fallback", fallback), ("monochrome", monochrome))}
    opsets = {k: max(o.version for o in p.opset_import if o.domain in ("", "ai.onnx")) for k, p in protos.items()}
    if len(set(opsets.values())) != 1:
        raise UserError(f"router: the models' opsets differ ({opsets}); export them with one opset")
    opset = max(16, next(iter(opsets.values())))  # ScatterElements' reduction needs opset 16

    x = "L"
    nodes = [
        # level = round(clip(L/100 * 255, 0, 255)) as int64, flattened
        helper.make_node("Mul", [x, "r_255"], ["r_scaled"]),
        helper.make_node("Clip", ["r_scaled", "r_zero", "r_255"], ["r_clipped"]),
        helper.make_node("Round", ["r_clipped"], ["r_round"]),
        helper.make_node("Cast", ["r_round"], ["r_level"], to=TensorProto.INT64),
        helper.make_node("Reshape", ["r_level", "r_flat_shape"], ["r_level_flat"]),
        helper.make_node("Shape", ["r_level_flat"], ["r_n"]),
        helper.make_node("ConstantOfShape", ["r_n"], ["r_ones"],
                         value=numpy_helper.from_array(np.ones(1, np.float32))),
        helper.make_node("ScatterElements", ["r_zeros256", "r_level_flat", "r_ones"], ["r_hist"],
                         axis=0, reduction="add"),
        helper.make_node("ReduceSum", ["r_hist"], ["r_total"], keepdims=1),
        helper.make_node("Div", ["r_hist", "r_total"], ["r_share"]),
        helper.make_node("MatMul", ["r_table", "r_share"], ["r_frac"]),
        # monochrome: every pixel on a DMG shade
        helper.make_node("Gather", ["r_frac", "r_idx0"], ["r_frac_dmg"], axis=0),
        helper.make_node("GreaterOrEqual", ["r_frac_dmg", "r_dmg_min"], ["r_is_dmg"]),
        # known game: the best game's share
        helper.make_node("Slice", ["r_frac", "r_one", "r_big", "r_axis0"], ["r_frac_games"]),
        helper.make_node("ReduceMax", ["r_frac_games"], ["r_best"], keepdims=0),
        helper.make_node("GreaterOrEqual", ["r_best", "r_threshold"], ["r_known"]),
    ]
    inner = helper.make_graph(
        [helper.make_node("If", ["r_known"], ["ab_colour"],
                          then_branch=_branch(protos["primary"], "primary_", x, "ab_primary"),
                          else_branch=_branch(protos["fallback"], "fallback_", x, "ab_fallback"))],
        "colour_input", [], [helper.make_tensor_value_info("ab_colour", TensorProto.FLOAT, None)])
    nodes.append(helper.make_node("If", ["r_is_dmg"], ["ab"],
                                  then_branch=_branch(protos["monochrome"], "monochrome_", x, "ab_monochrome"),
                                  else_branch=inner))
    inits = [
        numpy_helper.from_array(np.float32(255.0), "r_255"),
        numpy_helper.from_array(np.float32(0.0), "r_zero"),
        numpy_helper.from_array(np.array([-1], np.int64), "r_flat_shape"),
        numpy_helper.from_array(np.zeros(LEVELS, np.float32), "r_zeros256"),
        numpy_helper.from_array(table, "r_table"),
        numpy_helper.from_array(np.int64(0), "r_idx0"),
        numpy_helper.from_array(np.float32(1.0 - 1e-6), "r_dmg_min"),
        numpy_helper.from_array(np.array([1], np.int64), "r_one"),
        numpy_helper.from_array(np.array([1 << 30], np.int64), "r_big"),
        numpy_helper.from_array(np.array([0], np.int64), "r_axis0"),
        numpy_helper.from_array(np.float32(threshold), "r_threshold"),
    ]
    src_in = protos["primary"].graph.input[0]
    inp = onnx.ValueInfoProto()
    inp.CopyFrom(src_in)
    inp.name = x
    out = helper.make_tensor_value_info("ab", TensorProto.FLOAT, ["batch", 2, "height", "width"])
    graph = helper.make_graph(nodes, "retrocolor_router", [inp], [out], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="retrocolor")
    model.ir_version = min(protos["primary"].ir_version, model.ir_version)
    info = dict(meta or {})
    info.update({"router": True, "router_games": list(games), "router_threshold": float(threshold)})
    helper.set_model_props(model, {"retrocolor": json.dumps(info)})
    # the histogram moves into the colour branch: a 4-shade frame needs only a Gather + ReduceMin
    _dmg_test_without_histogram(model)
    onnx.checker.check_model(model)
    return model


def component_weights(router: str | Path, which: str = "monochrome") -> dict[str, np.ndarray]:
    """The weights of one of a router's nets, by their torch names (to fine-tune it: ``train --init``)."""
    import onnx
    from onnx import numpy_helper

    branch = _component_graph(onnx.load(str(router)), which)
    prefix = which + "_"
    return {i.name[len(prefix):]: numpy_helper.to_array(i) for i in branch.initializer if i.name.startswith(prefix)}


def _component_graph(model: Any, which: str) -> Any:
    """The If-branch graph that holds component ``which`` of a router ModelProto."""
    attrs = {a.name: a.g for a in _outer_if(model).attribute}
    if which in ("monochrome", "unknown"):
        dmg = attrs["then_branch"]
        gate = _gate_if(dmg)
        if gate is None:
            if which == "unknown":
                raise UserError("router: no component 'unknown' (this router has no known-game gate)")
            return dmg
        gate_attrs = {a.name: a.g for a in gate.attribute}
        return gate_attrs["then_branch" if which == "monochrome" else "else_branch"]
    (inner,) = [n for n in attrs["else_branch"].node if n.op_type == "If"]
    inner_attrs = {a.name: a.g for a in inner.attribute}
    if which in ("primary", "fallback"):
        return inner_attrs["then_branch" if which == "primary" else "else_branch"]
    raise UserError(f"router: no component {which!r} (primary, fallback, monochrome, unknown)")


def has_gate(model: Any) -> bool:
    """Whether a router ModelProto's 4-shade branch has the known-game gate."""
    then = next(a.g for a in _outer_if(model).attribute if a.name == "then_branch")
    return _gate_if(then) is not None


def replace_monochrome(router: str | Path, monochrome: str | Path, meta: dict[str, Any] | None = None) -> Any:
    """A copy of ``router`` whose monochrome branch is the colorizer ONNX file ``monochrome``.

    The primary and fallback nets and the gate's table stay as they are (no retraining, no
    re-decoding of their training frames); ``meta`` is merged into the router's metadata.
    """
    return _replace_4shade(router, monochrome, "monochrome", meta)


def replace_unknown(router: str | Path, unknown: str | Path, meta: dict[str, Any] | None = None) -> Any:
    """A copy of a gated ``router`` whose net for unknown 4-shade games is the ONNX file ``unknown``.

    Everything else (the specialist, the colour nets, the gate's table and threshold) stays, so
    shipping a better net for unseen games needs no rebuild of the gate.
    """
    return _replace_4shade(router, unknown, "unknown", meta)


def _replace_4shade(router: str | Path, new_path: str | Path, which: str, meta: dict[str, Any] | None) -> Any:
    """Swap one of the 4-shade branch's nets (``monochrome`` or ``unknown``) for another ONNX file."""
    model = _load_onnx(router, "router")
    new = _load_onnx(new_path, f"{which} model")
    then = next(a for a in _outer_if(model).attribute if a.name == "then_branch")
    gate = _gate_if(then.g)
    if which == "unknown" and gate is None:
        raise UserError(f"router: {router} has no known-game gate, so no 'unknown' net to replace")
    if gate is None:
        target = then
    else:
        side = "then_branch" if which == "monochrome" else "else_branch"
        target = next(b for b in gate.attribute if b.name == side)
    target.g.CopyFrom(_branch(new, f"{which}_", "L", f"ab_{which}"))

    def update(info: dict[str, Any]) -> None:
        info.update(meta or {})
        info.setdefault("components", {})[which] = Path(new_path).name
        if which == "unknown":
            info.setdefault("gate", {})["unknown"] = Path(new_path).name

    _update_info(model, update)
    return model


# ------------------------------------------------------------------ the known-game gate (4-shade input)
#: The gate hashes every 8x8 window of a frame's shade indices (a Game Boy tile, at any scroll:
#: :mod:`utils.tiles`).
GATE_WINDOW = WINDOW
#: The graph hashes the windows at every 4th row and column (1/16 of them: ample for a share, and
#: the table holds every offset, so any scroll matches); tables are built from every window.
GATE_STRIDE = 4
#: Hash table size: 2**bits one-bit entries, packed 8 to a byte in the graph (1 MiB at 23 bits).
GATE_BITS = 23
#: A 4-shade frame goes to the monochrome specialist when at least this share of its non-uniform
#: windows were seen in the specialist's training twins: the lowest share among the known games'
#: validation twins (0.869) less a 0.05 margin, rounded (``scripts/known_gate.py``, the card).
DEFAULT_GATE_THRESHOLD = 0.8


def gate_weights(seed: int = 0) -> np.ndarray:
    """The gate's (8, 8) hash weights (:func:`utils.tiles.window_weights`)."""
    return window_weights(seed)


def shade_index(L: np.ndarray) -> np.ndarray:
    """Nearest of the 4 DMG shades (0 = black .. 3 = white) for Lab L (0..100); on the DMG levels this
    equals the graph's ``round(3 * L/100)``."""
    levels = np.asarray(DMG_LEVELS_L, np.float32) / np.float32(100.0)
    x = np.asarray(L, np.float32) / np.float32(100.0)
    return np.abs(x[..., None] - levels).argmin(-1).astype(np.int64)


def window_hashes(shades: np.ndarray, bits: int = GATE_BITS, seed: int = 0,
                  stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """:func:`utils.tiles.window_hashes` at the gate's table size (``bits``)."""
    return tile_window_hashes(shades, bits, seed, stride)


def known_windows(shade_frames: Sequence[np.ndarray] | np.ndarray, bits: int = GATE_BITS,
                  seed: int = 0) -> np.ndarray:
    """Bit table packed into uint8 (2**bits / 8 bytes, little bit order): the window hashes that
    occur in the (H, W) shade-index images ``shade_frames``."""
    seen = np.zeros(1 << bits, bool)
    for s in shade_frames:
        h, valid = window_hashes(s, bits, seed)
        seen[h[valid]] = True
    return np.packbits(seen, bitorder="little")


def table_bits(table: np.ndarray) -> int:
    """The hash width of a packed table (its length is 2**bits / 8)."""
    n = int(np.asarray(table).shape[0]) * 8
    bits = n.bit_length() - 1
    if np.asarray(table).ndim != 1 or n != 1 << bits or not 8 <= bits <= 28:
        raise UserError(f"router gate: table must hold 2**bits bits (bits 8..28) packed in bytes, got {table.shape}")
    return bits


def window_shares(shades: np.ndarray, table: np.ndarray, seed: int = 0, stride: int = GATE_STRIDE) -> float:
    """Share of a (H, W) shade-index image's non-uniform 8x8 windows found in the packed ``table``,
    as the graph samples them (1.0 when no window has two shades: a blank screen tells nothing)."""
    h, valid = window_hashes(shades, table_bits(table), seed, stride)
    h = h[valid]
    if h.size == 0:
        return 1.0
    hit = (table[h >> 3] >> (h & 7).astype(np.uint8)) & 1
    return float(hit.mean())


def known_share(L: np.ndarray, table: np.ndarray, seed: int = 0) -> float:
    """:func:`window_shares` of a frame of Lab L (0..100), as the graph computes it."""
    return window_shares(shade_index(L), table, seed)


def _gate_graph(monochrome: Any, unknown: Any, table: np.ndarray, threshold: float, seed: int) -> Any:
    """The router's 4-shade branch: hash the frame's windows, then the specialist or ``unknown``.

    ``monochrome`` is the specialist's branch graph as the router holds it (output ``ab_monochrome``).
    """
    from onnx import TensorProto, helper, numpy_helper

    bits = table_bits(table)
    w = gate_weights(seed).astype(np.float32).reshape(1, 1, GATE_WINDOW, GATE_WINDOW)
    k = [GATE_WINDOW, GATE_WINDOW]
    # shade index = round(3 * L/100): the DMG levels' L/100 (0, 0.361, 0.696, 1) times 3 round to
    # 0..3 with 0.4 to spare, and this branch only sees pixels within a level of them
    nodes = [
        helper.make_node("Mul", ["L", "g_three"], ["g_l3"]),
        helper.make_node("Round", ["g_l3"], ["g_s"]),
        helper.make_node("Conv", ["g_s", "g_w"], ["g_hf"], kernel_shape=k, strides=[GATE_STRIDE, GATE_STRIDE]),
        helper.make_node("Cast", ["g_hf"], ["g_raw4"], to=TensorProto.INT64),
        helper.make_node("Reshape", ["g_raw4", "g_flat"], ["g_raw"]),
        helper.make_node("Mod", ["g_raw", "g_size"], ["g_h"]),
        # bit h of the packed table: byte h // 8, bit h % 8 (little order), as integer arithmetic
        helper.make_node("Div", ["g_h", "g_eight"], ["g_byte_i"]),
        helper.make_node("Mod", ["g_h", "g_eight"], ["g_bit_i"]),
        helper.make_node("Gather", ["g_table", "g_byte_i"], ["g_byte8"], axis=0),
        helper.make_node("Cast", ["g_byte8"], ["g_byte"], to=TensorProto.INT64),
        helper.make_node("Gather", ["g_pow2", "g_bit_i"], ["g_pow"], axis=0),
        helper.make_node("Div", ["g_byte", "g_pow"], ["g_shifted"]),
        helper.make_node("Mod", ["g_shifted", "g_two"], ["g_hit_i"]),
        helper.make_node("Cast", ["g_hit_i"], ["g_hit"], to=TensorProto.FLOAT),
        # a window counts unless it is uniform (raw hash a multiple of the weights' sum)
        helper.make_node("Mod", ["g_raw", "g_wsum"], ["g_rem"]),
        helper.make_node("Equal", ["g_rem", "g_zero"], ["g_uniform"]),
        helper.make_node("Not", ["g_uniform"], ["g_validb"]),
        helper.make_node("Cast", ["g_validb"], ["g_valid"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["g_hit", "g_valid"], ["g_hv"]),
        helper.make_node("ReduceSum", ["g_hv"], ["g_num"], keepdims=0),
        helper.make_node("ReduceSum", ["g_valid"], ["g_nvalid"], keepdims=0),
        # no window with two shades (a blank screen): 1.0, like window_shares
        helper.make_node("Equal", ["g_nvalid", "g_fzero"], ["g_blank"]),
        helper.make_node("Max", ["g_nvalid", "g_one"], ["g_den"]),
        helper.make_node("Div", ["g_num", "g_den"], ["g_share0"]),
        helper.make_node("Where", ["g_blank", "g_one", "g_share0"], ["g_share"]),
        helper.make_node("GreaterOrEqual", ["g_share", "g_threshold"], ["g_known"]),
        helper.make_node("If", ["g_known"], ["ab_dmg"],
                         then_branch=monochrome,
                         else_branch=_branch(unknown, "unknown_", "L", "ab_unknown")),
    ]
    inits = [
        numpy_helper.from_array(np.float32(3.0), "g_three"),
        numpy_helper.from_array(w, "g_w"),
        numpy_helper.from_array(np.array(1 << bits, np.int64), "g_size"),
        numpy_helper.from_array(np.array([-1], np.int64), "g_flat"),
        numpy_helper.from_array(np.asarray(table, np.uint8), "g_table"),
        numpy_helper.from_array(np.array(8, np.int64), "g_eight"),
        numpy_helper.from_array(np.array(2, np.int64), "g_two"),
        numpy_helper.from_array(1 << np.arange(8, dtype=np.int64), "g_pow2"),
        numpy_helper.from_array(np.array(int(gate_weights(seed).sum()), np.int64), "g_wsum"),
        numpy_helper.from_array(np.array(0, np.int64), "g_zero"),
        numpy_helper.from_array(np.float32(0.0), "g_fzero"),
        numpy_helper.from_array(np.float32(1.0), "g_one"),
        numpy_helper.from_array(np.float32(threshold), "g_threshold"),
    ]
    out = helper.make_tensor_value_info("ab_dmg", TensorProto.FLOAT, None)
    return helper.make_graph(nodes, "dmg_input", [], [out], initializer=inits)


def _dmg_test_without_histogram(model: Any) -> None:
    """Move the level histogram into the colour branch; test "every pixel a DMG shade" directly.

    The histogram (one ScatterElements over every pixel, ~0.25 ms) is only needed to match a
    colour frame against the known games.  "Every pixel on a DMG level" is the same test as the
    minimum over pixels of the DMG row at each pixel's level (a Gather and a ReduceMin), so a
    monochrome frame, the live filter's usual input, skips the histogram.
    """
    from onnx import helper, numpy_helper

    g = model.graph
    names = {n.output[0]: n for n in g.node}
    if "r_is_dmg" not in names or "r_known" not in names:
        return  # not a build_router graph: leave it as it is
    table = next(numpy_helper.to_array(i) for i in g.initializer if i.name == "r_table")
    outer_keep = {"r_scaled", "r_clipped", "r_round", "r_level"}
    moved = [n for n in g.node if n.op_type != "If" and n.output[0] not in outer_keep
             and n.output[0] not in ("r_frac_dmg", "r_is_dmg")]
    kept = [n for n in g.node if n.output[0] in outer_keep]
    outer_if = _outer_if(model)
    else_g = next(a.g for a in outer_if.attribute if a.name == "else_branch")
    inner = list(else_g.node)
    del else_g.node[:]
    else_g.node.extend(moved + inner)
    new = [helper.make_node("Gather", ["r_dmg_row", "r_level"], ["r_dmg_px"], axis=0),
           helper.make_node("ReduceMin", ["r_dmg_px"], ["r_dmg_all"], keepdims=0),
           helper.make_node("GreaterOrEqual", ["r_dmg_all", "r_half"], ["r_is_dmg"])]
    del g.node[:]
    g.node.extend(kept + new + [outer_if])
    g.initializer.extend([numpy_helper.from_array(table[0].astype(np.float32), "r_dmg_row"),
                          numpy_helper.from_array(np.float32(0.5), "r_half")])


def add_known_gate(router: str | Path, unknown: str | Path, table: np.ndarray,
                   threshold: float = DEFAULT_GATE_THRESHOLD, seed: int = 0,
                   meta: dict[str, Any] | None = None) -> Any:
    """A copy of ``router`` whose 4-shade branch only sends *known* games to its specialist.

    Every DMG game's frames have the same 4 lightness levels, so the level gate cannot tell a
    game the monochrome specialist learned from one it never saw, and the specialist is worse
    than grey on games it never saw.  Tiles can: ``table`` holds the hashes of the 8x8 windows
    of the specialist's training twins (:func:`known_windows`); a frame whose non-uniform
    windows are at least ``threshold`` known goes to the specialist, any other 4-shade frame to
    ``unknown`` (a net trained for unseen games).  Cost: a multiply-round per pixel, then a strided 8x8
    Conv with one output channel and a Gather over ~1,300 windows.  The colour-input branches are untouched.
    """
    import onnx

    table = np.asarray(table, np.uint8)
    bits = table_bits(table)
    if not 0.0 < threshold <= 1.0:
        raise UserError(f"router gate: threshold must be in (0, 1], got {threshold}")
    model = _load_onnx(router, "router")
    other = _load_onnx(unknown, "model")
    if has_gate(model):
        raise UserError(f"router gate: {router} already has a known-game gate")
    _dmg_test_without_histogram(model)  # a router built before build_router did this itself
    for a in _outer_if(model).attribute:
        if a.name == "then_branch":
            mono = onnx.GraphProto()
            mono.CopyFrom(a.g)
            a.g.CopyFrom(_gate_graph(mono, other, table, threshold, seed))

    def update(info: dict[str, Any]) -> None:
        info.update(meta or {})
        info["gate"] = {"window": GATE_WINDOW, "bits": bits, "seed": seed, "threshold": float(threshold),
                        "unknown": Path(unknown).name}

    _update_info(model, update)
    return model
