import { demoSettings } from './demo-settings';

function storage(entries: Record<string, string>): Pick<Storage, 'getItem'> {
  return { getItem: (key) => entries[key] ?? null };
}

describe('demoSettings', () => {
  it('defaults to this origin, the cookie, refresh ahead, a 30-minute idle timeout and DPoP', () => {
    expect(demoSettings(storage({}))).toEqual({
      apiUrl: '',
      transport: 'cookie',
      refreshAhead: true,
      idleSeconds: 1800,
      dpop: true,
    });
  });

  it('follows the overrides a browser sets', () => {
    const settings = demoSettings(
      storage({
        'tollgate.api': 'http://localhost:8000',
        'tollgate.refreshAhead': 'off',
        'tollgate.transport': 'localStorage',
        'tollgate.idleSeconds': '6',
        'tollgate.dpop': 'off',
      }),
    );
    expect(settings).toEqual({
      apiUrl: 'http://localhost:8000',
      transport: 'localStorage',
      refreshAhead: false,
      idleSeconds: 6,
      dpop: false,
    });
  });

  it('ignores what it does not understand', () => {
    expect(demoSettings(storage({ 'tollgate.transport': 'carrier pigeon', 'tollgate.idleSeconds': 'soon' }))).toMatchObject({
      transport: 'cookie',
      idleSeconds: 1800,
    });
  });
});
