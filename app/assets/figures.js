// A row of pictures with captions, and a download link: the seed walk's frames and the GIF
// export. `props.value` = { items: [{ src, caption }], download: { url, filename } | null }.
// Built with DOM calls (captions as text, sources as attributes), never as markup.
(() => {
  function render() {
    const box = element.querySelector(".rtm-figures");
    if (!box) return;
    box.textContent = "";
    const v = props.value;
    if (!v || !v.items) return;
    for (const item of v.items) {
      const fig = document.createElement("figure");
      const img = document.createElement("img");
      img.src = item.src;
      img.alt = item.caption;
      const cap = document.createElement("figcaption");
      cap.textContent = item.caption;
      fig.append(img, cap);
      box.append(fig);
    }
    if (v.download) {
      const a = document.createElement("a");
      a.href = v.download.url;
      a.download = v.download.filename;
      a.textContent = `Download ${v.download.filename}`;
      a.className = "rtm-download";
      box.append(a);
    }
  }
  watch("value", render);
  render();
})();
