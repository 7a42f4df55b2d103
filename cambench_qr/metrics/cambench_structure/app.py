"""The Space demo: upload a saliency map and a part-label map, get the structure scores.

evaluate 0.4's ``launch_gradio_widget`` calls ``gr.inputs``/``gr.outputs``, which Gradio removed in 4.0,
so this is a small Gradio app of its own. It only runs on a Space (gradio is not a package dependency).
"""

import gradio as gr
import numpy as np
from PIL import Image

from cambench_qr.metrics.summary import summarize

HEADLINE = ("fmr", "tmr", "bl", "auc_misf", "auc_mist", "auc_bg", "dts", "dts_modules", "pointing_finder",
            "rank_structure", "roc_auc_structure")


def score(saliency: Image.Image, parts: Image.Image, module_px: float, normalize: str, mask_mode: str):
    """Scores one map: a greyscale saliency image (brighter = more salient) and a mode-L part map."""
    if saliency is None or parts is None:
        raise gr.Error("upload a saliency map and a part-label map")
    sal = np.asarray(saliency.convert("L"), dtype=np.float32)
    prt = np.asarray(parts)
    if sal.shape != prt.shape:
        sal = np.asarray(saliency.convert("L").resize(prt.shape[::-1], Image.BILINEAR), dtype=np.float32)
    try:
        result = summarize(sal[None], prt[None], module_px=module_px or None, normalize=normalize,
                           mask_mode=mask_mode)
    except ValueError as error:
        raise gr.Error(str(error)) from None
    return [[name, round(result[name], 4), round(result[f"chance_{name}"], 4)] for name in HEADLINE]


demo = gr.Interface(
    fn=score,
    inputs=[gr.Image(type="pil", label="saliency map"),
            gr.Image(type="pil", image_mode="L", label="part map"),
            gr.Number(value=0, label="module pitch in px (0: unknown)"),
            gr.Radio(["sum", "minmax"], value="sum", label="normalize"),
            gr.Radio(["standard", "paper"], value="standard", label="mask mode")],
    outputs=gr.Dataframe(headers=["score", "value", "chance"], label="structure scores"),
    title="cambench_structure",
    description="Is a saliency map on the structure a QR reader needs? See the metric card for formulas.",
)

if __name__ == "__main__":
    demo.launch()
