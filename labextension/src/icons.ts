import { LabIcon } from '@jupyterlab/ui-components';

/** Three boxes joined as a small DAG. */
const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <rect x="2" y="3" width="7" height="5" rx="1.2"/>
    <rect x="15" y="9.5" width="7" height="5" rx="1.2"/>
    <rect x="2" y="16" width="7" height="5" rx="1.2"/>
    <path d="M9 5.5h2.5a1.5 1.5 0 0 1 1.5 1.5v4h2v2h-2v4a1.5 1.5 0 0 1-1.5 1.5H9v-2h2v-3.5h0V7H9z"/>
  </g>
</svg>`;

export const nbflowIcon = new LabIcon({ name: 'nbflow:dag', svgstr: svg });
