import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

// Built into console/dist, which the node serves at / (src/transport/http/console.ts).
// `npm run dev:console` proxies the API to a node on THINGLOOP_URL (default http://localhost:8080).
const target = process.env.THINGLOOP_URL ?? 'http://localhost:8080';

export default defineConfig({
  root: import.meta.dirname,
  base: '/',
  plugins: [react()],
  build: { outDir: 'dist', emptyOutDir: true, sourcemap: true, chunkSizeWarningLimit: 1024 },
  server: {
    proxy: {
      '/api': { target, ws: true },
      '/metrics': target,
      '/healthz': target,
    },
  },
});
