import type { ReactNode } from 'react';
import { ApiError } from '../api/client';
import type { Loadable } from '../lib/useApi';

export function Loading({ what }: { what: string }) {
  return (
    <p className="state loading" role="status" aria-live="polite">
      Loading {what}…
    </p>
  );
}

export function ErrorState({ error, retry }: { error: unknown; retry?: () => void }) {
  const message = error instanceof ApiError || error instanceof Error ? error.message : String(error);
  return (
    <div className="state error" role="alert">
      <p>{message}</p>
      {retry && (
        <button type="button" onClick={retry}>
          Retry
        </button>
      )}
    </div>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <div className="state empty">{children}</div>;
}

const noItems = (data: unknown) => Array.isArray(data) && data.length === 0;

/**
 * What a loaded list or panel shows: "Loading {what}…", the error with a Retry, `empty` (in an
 * Empty box) when `isEmpty(data)` holds (by default: the data is an empty array), else `children(data)`.
 */
export function Loaded<T>({
  state,
  what,
  retry,
  empty,
  isEmpty = noItems,
  children,
}: {
  state: Loadable<T>;
  what: string;
  retry: () => void;
  empty?: ReactNode;
  isEmpty?: (data: T) => boolean;
  children: (data: T) => ReactNode;
}) {
  if (state.status === 'loading') return <Loading what={what} />;
  if (state.status === 'error') return <ErrorState error={state.error} retry={retry} />;
  return empty !== undefined && isEmpty(state.data) ? <Empty>{empty}</Empty> : children(state.data);
}

/**
 * A detail screen until its record is there: "Loading {what}…", or the error under the record's
 * title with a Retry and a link back to the list.
 */
export function DetailPending({
  state,
  what,
  title,
  retry,
  back,
}: {
  state: Exclude<Loadable<unknown>, { status: 'ready' }>;
  what: string;
  title: string;
  retry: () => void;
  back: { href: string; label: string };
}) {
  if (state.status === 'loading') return <Loading what={what} />;
  return (
    <section>
      <h1>{title}</h1>
      <ErrorState error={state.error} retry={retry} />
      <p>
        <a href={back.href}>{back.label}</a>
      </p>
    </section>
  );
}
