/** A tiny typed helper for building DOM: `h('div', {class: 'x'}, child, 'text')`. */

type Child = Node | string | null | undefined | false;
type Attributes = Record<string, string | number | boolean | null | undefined>;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Attributes = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) {
      continue;
    }
    if (name === 'class') {
      el.className = String(value);
    } else if (value === true) {
      el.setAttribute(name, '');
    } else {
      el.setAttribute(name, String(value));
    }
  }
  append(el, ...children);
  return el;
}

export function append(parent: Node, ...children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) {
      continue;
    }
    parent.appendChild(typeof child === 'string' ? document.createTextNode(child) : child);
  }
}

/** Replace every child of `parent`. */
export function replaceChildren(parent: Element, ...children: Child[]): void {
  parent.textContent = '';
  append(parent, ...children);
}

/** A button that runs `onClick` and never lets a rejected promise escape. */
export function button(
  label: string,
  onClick: () => unknown,
  attributes: Attributes = {}
): HTMLButtonElement {
  const el = h('button', { type: 'button', ...attributes }, label);
  el.addEventListener('click', event => {
    event.stopPropagation();
    Promise.resolve()
      .then(onClick)
      .catch(error => console.error('nbflow:', error));
  });
  return el;
}
