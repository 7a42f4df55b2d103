"""The Space demo: upload a saliency map and a part-label map, get the structure scores.

evaluate 0.4's ``launch_gradio_widget`` calls ``gr.inputs``/``gr.outputs``, which Gradio removed in 4.0,
so this is a small Gradio app of its own (gradio is in the package's ``space`` extra). The saliency map
and the part map must have the same size; the part map holds one id 0..9 per pixel
(``cambench_qr.parts``). Bad input is answered with one message in the page (``gr.Error``).
"""

import gradio as gr
import numpy as np
from PIL import Image

from cambench_qr.metrics.summary import summarize
from cambench_qr.parts import NUM_PARTS

HEADLINE = ("fmr", "tmr", "bl", "auc_misf", "auc_mist", "auc_bg", "dts", "dts_modules", "pointing_finder",
            "rank_structure", "roc_auc_structure")


def score(saliency: Image.Image, parts: Image.Image, module_px: float, normalize: str, mask_mode: str):
    """Scores one map: a greyscale saliency image (brighter = more salient) and a part map of the same
    size whose grey values are the part ids. Returns rows [score, value, chance] rounded to 4 digits."""
    if saliency is None or parts is None:
        raise gr.Error("upload a saliency map and a part-label map")
    sal = np.asarray(saliency.convert("L"), dtype=np.float32)
    prt = np.asarray(parts.convert("L"))
    if sal.shape != prt.shape:
        raise gr.Error(f"the part map is {prt.shape[1]}x{prt.shape[0]} px but the saliency map is "
                       f"{sal.shape[1]}x{sal.shape[0]} px: upload both at the same size")
    if prt.max() >= NUM_PARTS:
        raise gr.Error(f"the part map holds id {prt.max()}: part ids are 0..{NUM_PARTS - 1} (see the part "
                       "table of the metric card)")
    try:
        result = summarize(sal[None], prt[None], module_px=module_px or None, normalize=normalize,
                           mask_mode=mask_mode)
    except ValueError as error:
        raise gr.Error(str(error)) from None
    return [[name, round(result[name], 4), round(result[f"chance_{name}"], 4)] for name in HEADLINE]


demo = gr.Interface(
    fn=score,
    inputs=[gr.Image(type="pil", label="saliency map", elem_id="saliency"),
            gr.Image(type="pil", image_mode="L", label="part map", elem_id="parts"),
            gr.Number(value=0, label="module pitch in px (0: unknown)"),
            gr.Radio(["sum", "minmax"], value="sum", label="normalize"),
            gr.Radio(["standard", "paper"], value="standard", label="mask mode")],
    outputs=gr.Dataframe(headers=["score", "value", "chance"], label="structure scores", elem_id="scores"),
    title="cambench_structure",
    description="Is a saliency map on the structure a QR reader needs? See the metric card for formulas.",
    flagging_mode="never",
)

if __name__ == "__main__":
    demo.launch()
