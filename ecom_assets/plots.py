"""Small PNG plots embedded in markdown metadata (the UI renders data-URI images)."""

import base64
import io


def png_markdown(draw, title: str, size=(6, 3.5)) -> str:
    """Run `draw(ax)` on a fresh Agg figure and return `![title](data:image/png;base64,...)`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=size, dpi=80)
    try:
        draw(ax)
        ax.set_title(title, fontsize=10)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
    finally:
        plt.close(fig)
    return f"![{title}](data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()})"
