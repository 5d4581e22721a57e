// BurnCloud console: the only script besides htmx (the Content-Security-Policy allows no inline
// script). Copy buttons: <button data-copy="#element-id"> copies that element's text and says so.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  const source = document.querySelector(button.dataset.copy);
  if (!source || !navigator.clipboard) return;
  try {
    await navigator.clipboard.writeText(source.textContent.trim());
    const label = button.textContent;
    button.textContent = button.dataset.copied || "Copied";
    setTimeout(() => { button.textContent = label; }, 2000);
  } catch (_) {
    // Clipboard refused (insecure origin or permission): the text stays selectable.
  }
});
