import { USER_ROUTES } from '@flotilla/protocol';
import { useResource } from '../api/use-resource.js';
import { useApi } from '../auth/session.js';
import { ErrorText } from '../ui/error-text.js';

export function DeviceTags({ uuid }: { uuid: string }) {
  const api = useApi();
  const tags = useResource(`tags:${uuid}`, () => api.call(USER_ROUTES.listDeviceTags, { params: { uuid } }));
  return (
    <section className="area-tags" aria-labelledby="tags-title">
      <h2 id="tags-title">Tags</h2>
      <ErrorText error={tags.error} />
      {tags.data &&
        (tags.data.items.length === 0 ? (
          <p className="muted">No tag.</p>
        ) : (
          <ul className="tags">
            {tags.data.items.map((tag) => (
              <li key={tag.key} className="tag">
                <span className="tag-key">{tag.key}</span>
                {tag.value !== '' && <span className="tag-value">{tag.value}</span>}
              </li>
            ))}
          </ul>
        ))}
    </section>
  );
}
