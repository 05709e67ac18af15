// @otalink/dashboard: the web dashboard's static files (one HTML page, its script and stylesheet; no build step,
// no CDN). The backend serves this directory at `/`.
import { fileURLToPath } from 'node:url';

/** Absolute path of the directory holding index.html, dashboard.js and dashboard.css. */
export const dashboardDir: string = fileURLToPath(new URL('../assets/', import.meta.url));

/** The files the dashboard consists of, for servers and tests. */
export const dashboardFiles: readonly string[] = ['index.html', 'dashboard.js', 'dashboard.css'];
